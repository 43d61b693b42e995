/*
 * Subcommand dispatch, `version` and `help` (including the configuration reference, generated
 * from the schema tables so it cannot drift from what kanaria accepts).
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <git2.h>

#include "kanaria/alloc.h"
#include "kanaria/app.h"
#include "kanaria/config.h"
#include "kanaria/metrics.h"
#include "kanaria/platform.h"
#include "kanaria/plugin/platform.h"
#include "kanaria/stage.h"
#include "git/git.h"
#include "platforms/local/local_service.h"

static int cmd_version(int argc, char **argv);
static int dispatch(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const struct kn_cli_command commands[] = {
    {"serve", "kanaria serve -c kanaria.yaml",
     "run the controller: watch the repositories, plan and deploy", kn_cmd_serve},
    {"validate", "kanaria validate [DIR] [-c kanaria.yaml] [--json]",
     "check every app under DIR (default .) and the manifests it lists", kn_cmd_validate},
    {"plan", "kanaria plan [REPO] [--from REV] [--to REV] [-c kanaria.yaml] [--json]",
     "preview what a change would deploy: per app, quick sync or pipeline, and the diff",
     kn_cmd_plan},
    {"status", "kanaria status [APP] [--repo NAME] [--json] [--watch [--until-done]]",
     "show every app (or one app and its recent deployments) of a running kanaria serve; "
     "--watch redraws it every second until Ctrl-C, or with --until-done until nothing it "
     "shows is deploying",
     kn_cmd_status},
    {"history", "kanaria history APP [--repo NAME] [--json]", "list the deployments of an app",
     kn_cmd_history},
    {"wait", "kanaria wait APP [--deployment ID] [--timeout D] [--repo NAME] [--json]",
     "follow the app's deployment (the current one, else the latest) until it ends: exit 0 on "
     "SUCCESS, 1 on FAILURE or CANCELLED (the reason on stderr), 3 when --timeout (default "
     "30m) passes first",
     kn_cmd_wait},
    {"get", "kanaria get deployment ID [--json]",
     "show one deployment whole: plan and diff, each stage with its times, what it waits for, "
     "approvals and analysis evaluations, and its log",
     kn_cmd_get},
    {"postmortem", "kanaria postmortem ID [--json]",
     "write a blameless postmortem draft of a deployment that failed or was rolled back: "
     "summary, timeline, detection with its numbers, impact, resolution (Markdown, or --json)",
     kn_cmd_postmortem},
    {"events",
     "kanaria events [--app APP] [--repo NAME] [--since T] [--type TYPE] [--follow] "
     "[--timeout D] [--json]",
     "print the audit log, oldest first (--since 2h or 2026-12-01T10:00: from then); --follow "
     "goes on with the events as they are written, reconnecting after a drop for up to "
     "--timeout (default 1m)",
     kn_cmd_events},
    {"approve", "kanaria approve APP [--repo NAME] [--json]",
     "approve the app's deployment that waits at WAIT_APPROVAL, or BLOCKED by its error budget",
     kn_cmd_approve},
    {"reject", "kanaria reject APP [--reason TEXT] [--repo NAME] [--json]",
     "reject the app's deployment that waits at WAIT_APPROVAL: it fails and rolls back",
     kn_cmd_reject},
    {"cancel", "kanaria cancel APP [--no-rollback] [--reason TEXT] [--repo NAME] [--json]",
     "cancel the app's deployment in progress: stop its stage, roll back (unless --no-rollback)",
     kn_cmd_cancel},
    {"rollback", "kanaria rollback APP [--to REV] [--repo NAME] [--json]",
     "deploy the app's last good commit again, or REV (7+ hex digits) it once ran successfully",
     kn_cmd_rollback},
    {"sync", "kanaria sync APP [--repo NAME] [--json]",
     "deploy the repository's head for the app now (a quick sync), even if it was rolled back",
     kn_cmd_sync},
    {"skip", "kanaria skip APP --stage N [--break-glass --reason TEXT] [--repo NAME] [--json]",
     "skip stage N of the app's running deployment (the running one, or a later one); a "
     "WAIT_APPROVAL only by an admin's --break-glass",
     kn_cmd_skip},
    {"retry", "kanaria retry APP [--repo NAME] [--json]",
     "plan the app's last deployment again through its pipeline, when it failed or was rolled "
     "back",
     kn_cmd_retry},
    {"promote", "kanaria promote APP --full [--repo NAME] [--json]",
     "promote the app's running canary now: skip every stage up to the PRIMARY_ROLLOUT (refused "
     "while an approval before it lacks its approvals or an analysis check is failing)",
     kn_cmd_promote},
    {"prune", "kanaria prune APP [--repo NAME] [--json]",
     "remove an orphaned app (its folder was deleted): instances, frontend and backend",
     kn_cmd_prune},
    {"repos", "kanaria repos [REPO] [--json]",
     "show each repository of a running kanaria serve: branch, head, last fetch, last error, "
     "apps",
     kn_cmd_repos},
    {"completion", "kanaria completion bash|zsh|fish",
     "print the shell's completion script (source it, or install it where the shell looks)",
     kn_cmd_completion},
    {"version", "kanaria version", "print the version", cmd_version},
    {"help",
     "kanaria help [COMMAND | config | app | stages | platform [TYPE] | metrics [TYPE] | "
     "localservice]",
     "show help, or the configuration reference", cmd_help},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
    fprintf(f, "usage: kanaria COMMAND [ARGS]\n\n"
               "kanaria is a GitOps deployment controller with canary rollout.\n\n"
               "commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(f,
            "\n'kanaria help COMMAND' shows a command's usage. Client commands (status, history,\n"
            "wait, get, postmortem, events, approve, reject, cancel, rollback, sync, retry, skip,\n"
            "promote, prune, repos) reach KANARIA_ADDR (default http://127.0.0.1:7070) with the token in\n"
            "KANARIA_TOKEN; an https server whose certificate no system CA signed is verified\n"
            "with the PEM file of its CA in KANARIA_CACERT.\n");
}

static int cmd_version(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "usage: kanaria version\n");
        return KN_EXIT_USAGE;
    }
    printf("kanaria %s\n", KANARIA_VERSION);
    return KN_EXIT_OK;
}

static void print_reference(const char *title, const struct kn_schema *schema, const char *prefix)
{
    struct kn_buf buf;

    kn_buf_init(&buf, KN_BUF_UNBOUNDED);
    kn_schema_describe(schema, prefix, &buf);
    printf("## %s\n\n| key | type | default | meaning |\n| --- | --- | --- | --- |\n%s\n", title,
           buf.data ? buf.data : "");
    kn_buf_release(&buf);
}

static void print_stages(void)
{
    printf("## stages (`spec.pipeline[]`)\n\n");
    print_reference("any stage", &kn_stage_config_schema, "");
    for (size_t i = 0; kn_stage_kinds[i]; i++) {
        const struct kn_stage_kind *k = kn_stage_kinds[i];
        char title[128];
        printf("### %s\n\n%s.\n\n", k->name, k->help);
        if (k->with) {
            snprintf(title, sizeof(title), "%s options (`with:`)", k->name);
            print_reference(title, k->with, "");
        }
    }
}

/* ---- providers: `kanaria help platform [TYPE]`, `kanaria help metrics [TYPE]` --------------- */

static void print_caps(unsigned caps)
{
    int first = 1;

    printf("Capabilities:");
    for (unsigned bit = 1; bit && bit <= caps; bit <<= 1) {
        if (caps & bit) {
            printf("%s %s", first ? "" : ",", kn_platform_cap_name(bit));
            first = 0;
        }
    }
    printf("%s.\n\n", first ? " none" : "");
}

/* The manifest kinds a platform type takes, and the schema of each closed one. */
static void print_kinds(const struct kn_platform_type *t)
{
    static const char *const roles[] = {"", "workload", "route", "applied as it is"};
    char title[160];

    printf("## Manifest kinds\n\n| kind | apiVersion | role | count | |\n| --- | --- | --- | --- | --- |\n");
    for (size_t i = 0; i < t->nkinds; i++) {
        const struct kn_manifest_kind *k = &t->kinds[i];
        char count[32];
        if (k->max > 0) {
            snprintf(count, sizeof(count), "%d..%d", k->min, k->max);
        } else {
            snprintf(count, sizeof(count), "%d or more", k->min);
        }
        printf("| `%s` | %s | %s | %s | %s |\n", k->kind ? k->kind : "any other",
               k->api_version ? k->api_version : "any",
               k->role >= KN_KIND_WORKLOAD && k->role <= KN_KIND_OPEN ? roles[k->role] : "",
               count, k->help ? k->help : "");
    }
    printf("\n");
    for (size_t i = 0; i < t->nkinds; i++) {
        if (t->kinds[i].kind && t->kinds[i].schema) {
            snprintf(title, sizeof(title), "`%s`", t->kinds[i].kind);
            print_reference(title, t->kinds[i].schema, "");
        }
    }
}

/* The placeholders an app's analysis queries may use on this type. */
static void print_placeholders(const struct kn_platform_type *t)
{
    printf("## Placeholders of analysis queries\n\n"
           "Besides {{app}}, {{repository}}, {{variant}}, {{window}}, {{commit}} and "
           "{{args.NAME}}, ");
    if (!t->placeholders || !t->placeholders[0].name) {
        printf("apps of type %s have none.\n\n", t->name);
        return;
    }
    printf("apps of type %s have:\n\n", t->name);
    for (const struct kn_placeholder *p = t->placeholders; p->name; p++) {
        printf("- `{{%s}}`: %s\n", p->name, p->help);
    }
    printf("\n");
}

/* A platform type's reference, each part from its descriptor's tables. */
static void print_platform_type(const struct kn_platform_type *t)
{
    char title[160];

    printf("# platform type `%s`\n\n%s.\n\n", t->name, t->help);
    print_caps(t->caps);
    if (t->weight_step > 0) {
        printf("Traffic moves in steps of %g%%.\n\n", t->weight_step);
    }
    if (t->config_schema) {
        snprintf(title, sizeof(title),
                 "kanaria.yaml `platforms[]` keys of type %s (beside `name` and `type`)", t->name);
        print_reference(title, t->config_schema, "");
    } else {
        printf("A `platforms[]` entry of type %s takes only `name` and `type`.\n\n", t->name);
    }
    if (t->app_schema) {
        snprintf(title, sizeof(title), "app.kanaria.yaml `spec.%s` keys", t->name);
        print_reference(title, t->app_schema, "");
    } else {
        printf("Apps of type %s take no `spec.%s` options.\n\n", t->name, t->name);
    }
    print_kinds(t);
    print_placeholders(t);
}

static void print_metrics_type(const struct kn_metrics_type *t)
{
    char title[160];
    char step[32];

    printf("# metrics provider type `%s`\n\n%s.\n\n", t->name, t->help ? t->help : "");
    if (t->min_step_ms > 0) {
        printf("Smallest step of a range query: %s.\n\n",
               kn_duration_format(t->min_step_ms, step, sizeof(step)));
    }
    printf("Queries are %s when an app is validated.\n\n",
           t->check_query ? "checked (syntax only)" : "not checked");
    if (t->platform_type) {
        printf("An entry names a platform of type %s in `platform`: the provider uses its "
               "credentials, region and endpoint.\n\n",
               t->platform_type);
    }
    if (t->query_help) {
        printf("## Queries\n\n%s\n", t->query_help);
    }
    if (t->config_schema) {
        snprintf(title, sizeof(title),
                 "kanaria.yaml `metricsProviders[]` keys of type %s (beside `name`, `type`%s)",
                 t->name, t->platform_type ? " and `platform`" : "");
        print_reference(title, t->config_schema, "");
    }
    if (t->metric_schema) {
        snprintf(title, sizeof(title), "a metric's own options for type %s", t->name);
        print_reference(title, t->metric_schema, "");
    }
}

static int help_platform(int argc, char **argv)
{
    const struct kn_platform_type *t = argc > 2 ? kn_platform_type_find(argv[2]) : NULL;
    int rc = KN_EXIT_OK;

    if (argc > 3) {
        fprintf(stderr, "usage: kanaria help platform [TYPE]\n");
        rc = KN_EXIT_USAGE;
    } else if (argc == 3 && !t) {
        fprintf(stderr, "kanaria: no platform type '%s' (types:", argv[2]);
        for (size_t i = 0; kn_platform_types[i]; i++) {
            fprintf(stderr, "%s %s", i ? "," : "", kn_platform_types[i]->name);
        }
        fprintf(stderr, ")\n");
        rc = KN_EXIT_USAGE;
    } else if (t) {
        print_platform_type(t);
    } else {
        printf("platform types (`platforms[].type` in kanaria.yaml):\n\n");
        for (size_t i = 0; kn_platform_types[i]; i++) {
            printf("  %-12s %s\n", kn_platform_types[i]->name, kn_platform_types[i]->help);
        }
        printf("\n'kanaria help platform TYPE' shows a type's keys and what it can do.\n");
    }
    return rc;
}

static int help_metrics(int argc, char **argv)
{
    const struct kn_metrics_type *t = argc > 2 ? kn_metrics_type_find(argv[2]) : NULL;
    int rc = KN_EXIT_OK;

    if (argc > 3) {
        fprintf(stderr, "usage: kanaria help metrics [TYPE]\n");
        rc = KN_EXIT_USAGE;
    } else if (argc == 3 && !t) {
        fprintf(stderr, "kanaria: no metrics provider type '%s' (types:", argv[2]);
        for (size_t i = 0; kn_metrics_types[i]; i++) {
            fprintf(stderr, "%s %s", i ? "," : "", kn_metrics_types[i]->name);
        }
        fprintf(stderr, ")\n");
        rc = KN_EXIT_USAGE;
    } else if (t) {
        print_metrics_type(t);
    } else {
        printf("metrics provider types (`metricsProviders[].type` in kanaria.yaml):\n\n");
        for (size_t i = 0; kn_metrics_types[i]; i++) {
            printf("  %-12s %s\n", kn_metrics_types[i]->name,
                   kn_metrics_types[i]->help ? kn_metrics_types[i]->help : "");
        }
        printf("\n'kanaria help metrics TYPE' shows a type's keys.\n");
    }
    return rc;
}

/* ---- the topics of `kanaria help` ------------------------------------------------------------- */

static int help_config(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    print_reference("kanaria.yaml", &kn_config_schema, "");
    return KN_EXIT_OK;
}

static int help_app(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    print_reference("app.kanaria.yaml", &kn_app_config_schema, "");
    return KN_EXIT_OK;
}

static int help_stages(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    print_stages();
    return KN_EXIT_OK;
}

static int help_localservice(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    print_reference("LocalService", &kn_local_service_schema, "");
    return KN_EXIT_OK;
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is "help", argv[1] the topic */
    int takes_arg;                     /* may be followed by one word (a type) */
} help_topics[] = {
    {"config", help_config, 0},     {"app", help_app, 0},
    {"stages", help_stages, 0},     {"platform", help_platform, 1},
    {"metrics", help_metrics, 1},   {"localservice", help_localservice, 0},
};

const struct kn_cli_command *kn_cli_commands(size_t *n)
{
    *n = NCOMMANDS;
    return commands;
}

const char *kn_cli_help_topic(size_t i)
{
    return i < sizeof(help_topics) / sizeof(help_topics[0]) ? help_topics[i].name : NULL;
}

static int cmd_help(int argc, char **argv)
{
    const char *topic = argc > 1 ? argv[1] : NULL;

    if (!topic) {
        usage(stdout);
        return KN_EXIT_OK;
    }
    if (strcmp(topic, "--man") == 0) {
        return kn_cli_man(argc - 1, argv + 1);
    }
    for (size_t i = 0; i < sizeof(help_topics) / sizeof(help_topics[0]); i++) {
        if (strcmp(help_topics[i].name, topic) == 0) {
            if (!help_topics[i].takes_arg && argc > 2) {
                fprintf(stderr, "usage: kanaria help %s\n", topic);
                return KN_EXIT_USAGE;
            }
            return help_topics[i].run(argc, argv);
        }
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(commands[i].name, topic) == 0) {
            printf("usage: %s\n\n%s\n", commands[i].usage, commands[i].summary);
            return KN_EXIT_OK;
        }
    }
    fprintf(stderr, "kanaria: no help on '%s'\n", topic);
    return KN_EXIT_USAGE;
}

int kn_cli_main(int argc, char **argv)
{
    int rc;

    kn_git_global_init();
    rc = dispatch(argc, argv);
    git_libgit2_shutdown();
    return rc;
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return KN_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return KN_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        return cmd_version(1, argv + 1);
    }
    /* not in the table: run by `kanaria serve` itself, never by a user */
    if (strcmp(argv[1], KN_GIT_FETCH_COMMAND) == 0) {
        return kn_git_fetch_child_main(argc - 1, argv + 1);
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(commands[i].name, argv[1]) == 0) {
            return commands[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "kanaria: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return KN_EXIT_USAGE;
}
