/*
 * An ECS app's task and service definitions against the ECS API's input shapes
 * (controller/platforms/ecs/shapes.c) and kanaria's rules for them (app.c): files in the shapes
 * PipeCD's ECS users have pass; every error is located and names the member; the wire form
 * sends the API's types. Also the generated tables hold together.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/manifest.h"
#include "kanaria/schema.h"
#include "platforms/ecs/ecs.h"
#include "platforms/ecs/shapes.h"
#include "testutil.h"

/* As PipeCD's examples write them (examples/ecs/): numbers for the task-level cpu and memory,
 * null and "" for members left out, empty lists. */
static const char good_taskdef[] = "family: nginx-service-fam\n"
                                   "executionRoleArn: arn:aws:iam::1234:role/ecsTaskExecutionRole\n"
                                   "containerDefinitions:\n"
                                   "  - command: null\n"
                                   "    cpu: 100\n"
                                   "    image: 1234.dkr.ecr.ap-northeast-1.amazonaws.com/nginx:1\n"
                                   "    memory: 100\n"
                                   "    mountPoints: []\n"
                                   "    name: web\n"
                                   "    essential: true\n"
                                   "    portMappings:\n"
                                   "      - containerPort: 80\n"
                                   "        protocol: tcp\n"
                                   "    environment:\n"
                                   "      - {name: DEBUG, value: true}\n"
                                   "      - {name: WORKERS, value: 4}\n"
                                   "    dockerLabels: {team: web, tier: 1}\n"
                                   "    logConfiguration:\n"
                                   "      logDriver: awslogs\n"
                                   "      options: {awslogs-group: /ecs/web, awslogs-region: "
                                   "us-east-1}\n"
                                   "requiresCompatibilities:\n"
                                   "  - FARGATE\n"
                                   "networkMode: awsvpc\n"
                                   "memory: 512\n"
                                   "cpu: 256\n"
                                   "pidMode: \"\"\n"
                                   "volumes: []\n"
                                   "tags: [{key: app, value: web}]\n";

static const char good_servicedef[] = "cluster: arn:aws:ecs:ap-northeast-1:1234:cluster/test\n"
                                      "serviceName: nginx-canary-service\n"
                                      "desiredCount: 2\n"
                                      "role: arn:aws:iam::1234:role/ecsServiceRole\n"
                                      "deploymentConfiguration:\n"
                                      "  maximumPercent: 200\n"
                                      "  minimumHealthyPercent: 0\n"
                                      "schedulingStrategy: REPLICA\n"
                                      "deploymentController:\n"
                                      "  type: EXTERNAL\n"
                                      "enableECSManagedTags: true\n"
                                      "propagateTags: SERVICE\n"
                                      "launchType: FARGATE\n"
                                      "networkConfiguration:\n"
                                      "  awsvpcConfiguration:\n"
                                      "    assignPublicIp: ENABLED\n"
                                      "    securityGroups:\n"
                                      "      - sg-1234\n"
                                      "    subnets:\n"
                                      "      - subnet-1234\n"
                                      "      - subnet-5678\n";

/* The check of kind k (0 task definition, 1 service definition) on `yaml`: every message, one a
 * line (caller frees). */
static char *check(int k, const char *yaml)
{
    struct kn_yaml *y = NULL;
    struct kn_error err;
    struct kn_diags diags;
    struct kn_schema_ctx ctx;
    struct kn_buf out;
    char line[1024];

    assert_int_equal(kn_yaml_parse(&y, k ? "servicedef.yaml" : "taskdef.yaml", yaml,
                                   strlen(yaml), NULL, &err),
                     0);
    kn_diags_init(&diags, 0);
    memset(&ctx, 0, sizeof(ctx));
    ctx.diags = &diags;
    assert_non_null(kn_ecs_kinds[k].check);
    kn_ecs_kinds[k].check(y->docs[0], &ctx);
    kn_buf_init(&out, KN_BUF_UNBOUNDED);
    kn_buf_adds(&out, "");
    for (size_t i = 0; i < diags.count; i++) {
        kn_buf_addf(&out, "%s\n", kn_diag_format(&diags.items[i], line, sizeof(line)));
    }
    kn_diags_release(&diags);
    kn_yaml_free(y);
    return kn_buf_detach(&out, NULL);
}

static void expect(int k, const char *yaml, const char *want)
{
    char *got = check(k, yaml);
    if (strcmp(got, want) != 0) {
        print_error("--- expected:\n%s--- got:\n%s", want, got);
    }
    assert_string_equal(got, want);
    free(got);
}

static void test_pipecd_files_pass(void **state)
{
    (void)state;
    expect(0, good_taskdef, "");
    expect(1, good_servicedef, "");
}

static void test_unknown_member(void **state)
{
    (void)state;
    expect(0,
           "family: web\n"
           "containerDefinitions:\n"
           "  - name: web\n"
           "    memroy: 512\n"
           "    Image: nginx\n"
           "famly: x\n",
           "taskdef.yaml:4:5: containerDefinitions[0].memroy: unknown member of "
           "ContainerDefinition (did you mean 'memory'?)\n"
           "taskdef.yaml:5:5: containerDefinitions[0].Image: unknown member of "
           "ContainerDefinition (did you mean 'image'?)\n"
           "taskdef.yaml:6:1: famly: unknown member of RegisterTaskDefinition input (did you "
           "mean 'family'?)\n");
    /* nothing close: the members are listed */
    expect(1,
           "cluster: c\n"
           "serviceName: web\n"
           "deploymentController: {type: EXTERNAL, zzzzzz: 1}\n",
           "servicedef.yaml:3:40: deploymentController.zzzzzz: unknown member of "
           "DeploymentController (its members: type)\n");
}

static void test_types(void **state)
{
    (void)state;
    expect(0,
           "family: web\n"
           "containerDefinitions:\n"
           "  - name: web\n"
           "    cpu: \"256\"\n"
           "    essential: \"yes\"\n"
           "    command: echo hello\n"
           "    portMappings: [{containerPort: 1.5}]\n"
           "    linuxParameters: [1]\n"
           "networkMode: nat\n"
           "tags: [{key: \"\", value: x}]\n",
           "taskdef.yaml:4:10: containerDefinitions[0].cpu: must be an integer, got a string\n"
           "taskdef.yaml:5:16: containerDefinitions[0].essential: must be true or false, got a "
           "string\n"
           "taskdef.yaml:6:14: containerDefinitions[0].command: must be a list, got a string\n"
           "taskdef.yaml:7:36: containerDefinitions[0].portMappings[0].containerPort: must be an "
           "integer, got a number\n"
           "taskdef.yaml:8:22: containerDefinitions[0].linuxParameters: must be a map, got a "
           "list\n"
           "taskdef.yaml:9:14: networkMode: must be one of bridge, host, awsvpc, none, got 'nat'\n"
           "taskdef.yaml:10:14: tags[0].key: must be at least 1 character long, got 0\n");
    /* the model's bounds, and 32-bit integers where it gives none */
    expect(1,
           "cluster: c\n"
           "serviceName: web\n"
           "desiredCount: 4294967296\n"
           "capacityProviderStrategy: [{capacityProvider: FARGATE, weight: 2000}]\n",
           "servicedef.yaml:3:15: desiredCount: must be between -2147483648 and 2147483647, got "
           "4294967296\n"
           "servicedef.yaml:4:64: capacityProviderStrategy[0].weight: must be between 0 and "
           "1000, got 2000\n");
}

static void test_required(void **state)
{
    (void)state;
    expect(0, "family: web\ncpu: 256\n",
           "taskdef.yaml:1:1: a RegisterTaskDefinition input needs 'containerDefinitions'\n");
    expect(0, "family: web\ncontainerDefinitions: null\n",
           "taskdef.yaml:2:23: a RegisterTaskDefinition input needs 'containerDefinitions'\n");
    expect(1,
           "cluster: c\n"
           "serviceName: web\n"
           "deploymentController: {}\n",
           "servicedef.yaml:3:23: deploymentController: a DeploymentController needs 'type'\n");
}

/* What the EXTERNAL deployment controller and kanaria need of a service definition. */
static void test_service_rules(void **state)
{
    (void)state;
    expect(1,
           "serviceName: web\n"
           "taskDefinition: web:3\n"
           "loadBalancers:\n"
           "  - {targetGroupArn: arn:tg, containerName: web, containerPort: 80}\n"
           "schedulingStrategy: DAEMON\n"
           "deploymentController: {type: ECS}\n",
           "servicedef.yaml:6:30: deploymentController.type: must be EXTERNAL, got 'ECS' "
           "(kanaria deploys through task sets; left out, kanaria sets it)\n"
           "servicedef.yaml:2:1: taskDefinition: not taken in a service definition: kanaria "
           "registers spec.ecs.taskDefinitionFile and puts it on each task set\n"
           "servicedef.yaml:3:1: loadBalancers: not taken in a service definition: kanaria puts "
           "each task set on its target group of spec.ecs.targetGroups\n"
           "servicedef.yaml:5:21: schedulingStrategy: DAEMON is not possible with the EXTERNAL "
           "deployment controller that kanaria uses (REPLICA only)\n"
           "servicedef.yaml:1:1: a service definition needs 'cluster' (kanaria names it in every "
           "task-set call)\n");
    /* left out, or empty, they are fine */
    expect(1, "cluster: c\nserviceName: web\nloadBalancers: []\ntaskDefinition: null\n", "");
}

static json_t *spec_of(const char *yaml)
{
    struct kn_yaml *y = NULL;
    struct kn_error err;
    json_t *j;

    assert_int_equal(kn_yaml_parse(&y, "f.yaml", yaml, strlen(yaml), NULL, &err), 0);
    j = kn_node_to_json(y->docs[0]);
    kn_yaml_free(y);
    return j;
}

static void test_to_wire(void **state)
{
    json_t *spec = spec_of(good_taskdef);
    json_t *wire = kn_ecs_shape_to_wire(spec, kn_ecs_register_task_definition_input);
    json_t *c = json_array_get(json_object_get(wire, "containerDefinitions"), 0);
    json_t *env = json_object_get(c, "environment");
    char *text;

    (void)state;
    /* task-level cpu and memory are strings in the API; the container's are integers */
    assert_string_equal(json_string_value(json_object_get(wire, "cpu")), "256");
    assert_string_equal(json_string_value(json_object_get(wire, "memory")), "512");
    assert_true(json_is_integer(json_object_get(c, "cpu")));
    assert_int_equal(json_integer_value(json_object_get(c, "cpu")), 100);
    assert_string_equal(json_string_value(json_object_get(json_array_get(env, 0), "value")),
                        "true");
    assert_string_equal(json_string_value(json_object_get(json_array_get(env, 1), "value")),
                        "4");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(c, "dockerLabels"), "tier")), "1");
    /* null and "" for an enum are left out; empty lists stay */
    assert_null(json_object_get(c, "command"));
    assert_null(json_object_get(wire, "pidMode"));
    assert_true(json_is_array(json_object_get(wire, "volumes")));
    /* the input is left as it was */
    assert_true(json_is_integer(json_object_get(spec, "cpu")));
    json_decref(wire);
    json_decref(spec);

    spec = spec_of("cpu: 0.5\nmemory: 1e3\nfamily: 12\nunknownMember: 3\n");
    wire = kn_ecs_shape_to_wire(spec, kn_ecs_register_task_definition_input);
    text = kn_json_canonical(wire);
    assert_string_equal(text,
                        "{\"cpu\":\"0.5\",\"family\":\"12\",\"memory\":\"1000\","
                        "\"unknownMember\":3}");
    free(text);
    json_decref(wire);
    json_decref(spec);
    assert_null(kn_ecs_shape_to_wire(NULL, kn_ecs_create_service_input));
}

/* Every index of the generated tables points inside them, and the roots are the requests. */
static void test_tables(void **state)
{
    size_t nmembers = 0, nenums = 0;

    (void)state;
    assert_string_equal(kn_ecs_register_task_definition_input->name,
                        "RegisterTaskDefinitionRequest");
    assert_string_equal(kn_ecs_create_service_input->name, "CreateServiceRequest");
    for (size_t i = 0; i < kn_ecs_nshapes; i++) {
        const struct kn_ecs_shape *s = &kn_ecs_shapes[i];
        if (s->type == KN_ECS_STRUCT && s->first + s->count > nmembers) {
            nmembers = s->first + s->count;
        } else if (s->type == KN_ECS_STRING && s->first + s->count > nenums) {
            nenums = s->first + s->count;
        } else if (s->type == KN_ECS_LIST) {
            assert_true(s->first < kn_ecs_nshapes);
        } else if (s->type == KN_ECS_MAP) {
            assert_true(s->first < kn_ecs_nshapes && s->count < kn_ecs_nshapes);
        }
        if (i > 0) {
            assert_true(strcmp(kn_ecs_shapes[i - 1].name, s->name) < 0); /* sorted, once each */
        }
    }
    for (size_t i = 0; i < nmembers; i++) {
        assert_true(kn_ecs_members[i].shape < kn_ecs_nshapes);
    }
    for (size_t i = 0; i < nenums; i++) {
        assert_non_null(kn_ecs_enums[i]);
    }
    assert_non_null(kn_ecs_shape_member(kn_ecs_create_service_input, "deploymentController"));
    assert_null(kn_ecs_shape_member(kn_ecs_create_service_input, "DeploymentController"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipecd_files_pass),
        cmocka_unit_test(test_unknown_member),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_required),
        cmocka_unit_test(test_service_rules),
        cmocka_unit_test(test_to_wire),
        cmocka_unit_test(test_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
