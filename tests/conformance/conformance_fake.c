/*
 * The conformance suite on the fake provider (tests/fakes/): the front end's promises at unit
 * speed. The truth is the fake's world (struct kn_fake_world), which outlives its instances.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conformance.h"
#include "fake_platform.h"
#include "kanaria/alloc.h"
#include "kanaria/config.h"

/* The descriptor the harness makes instances of: the fake, or the fake with fewer
 * capabilities (what the front end skips for it must hold as well). */
static const struct kn_platform_type *fake_type;
static struct kn_platform_type fake_minimal;

struct fake_harness {
    uv_loop_t *loop;
    struct kn_fake_world world;
    struct kn_fake_platform *fp; /* the current instance's */
    char script[64];             /* the apply script of the current instance */
};

static int fake_setup(void **self, uv_loop_t *loop, const char *dir, char *why)
{
    struct fake_harness *h = kn_calloc(1, sizeof(*h));

    (void)dir;
    (void)why;
    h->loop = loop;
    *self = h;
    return 0;
}

static void fake_teardown(void *self)
{
    struct fake_harness *h = self;

    kn_fake_world_release(&h->world);
    kn_fake_world = NULL;
    free(h);
}

static void fake_new(void *self, struct kn_platform **out)
{
    struct fake_harness *h = self;
    struct kn_platform_config pc = {
        .name = (char *)(uintptr_t) "fake",
        .ptype = fake_type,
    };
    struct kn_platform_deps deps = {.loop = h->loop};
    struct kn_error err;

    kn_fake_world = &h->world;
    assert_int_equal(kn_platform_new(out, &deps, &pc, &err), 0);
    h->fp = kn_fake_platform_last;
    h->script[0] = '\0';
    h->fp->rule[KN_FAKE_APPLY].delay_ms = 5;
}

/* The fake reads nothing of the manifests but the version in the command's path. */
static json_t *fake_manifests(void *self, const struct kn_app_id *id, const char *version,
                              int never_ready)
{
    struct fake_harness *h = self;
    char cmd[64];

    (void)id;
    if (never_ready) {
        /* the next apply of this instance hangs until it is cancelled */
        size_t n = (size_t)h->fp->calls[KN_FAKE_APPLY];
        assert_true(n + 2 < sizeof(h->script));
        memset(h->script, 'o', n);
        h->script[n] = 'h';
        h->script[n + 1] = '\0';
        h->fp->rule[KN_FAKE_APPLY].script = h->script;
    }
    snprintf(cmd, sizeof(cmd), "/opt/web/%s/run", version);
    return json_pack("[{s:s, s:s, s:{s:s}, s:{s:[s]}}]", "apiVersion", "kanaria.dev/v1", "kind",
                     "LocalService", "metadata", "name", "web", "spec", "command", cmd);
}

static void fake_truth(void *self, const struct kn_app_id *id, struct kn_conf_truth *out)
{
    struct fake_harness *h = self;
    const struct kn_fake_app *a = kn_fake_world_app(&h->world, id, 0);
    size_t len = 0;

    for (int v = 0; a && v < KN_VARIANT_COUNT; v++) {
        out->instances[v] = a->running[v] + a->starting[v];
        out->servers[v] = a->running[v];
        out->routed[v] = a->running[v] && a->weight[v] > 0;
        snprintf(out->commit[v], sizeof(out->commit[v]), "%s", a->commit[v]);
        if (a->running[v] && len < sizeof(out->ids)) {
            len += (size_t)snprintf(out->ids + len, sizeof(out->ids) - len, "%s/%s/%s:%.7s ",
                                    id->repository, id->app, kn_variant_name((enum kn_variant)v),
                                    a->commit[v]);
        }
    }
}

static int fake_tamper_weight(void *self, const struct kn_app_id *id, enum kn_variant v, char *why)
{
    struct fake_harness *h = self;
    struct kn_fake_app *a = kn_fake_world_app(&h->world, id, 0);

    (void)why;
    assert_non_null(a);
    a->weight[v] = a->weight[v] > 50 ? a->weight[v] / 2 : a->weight[v] + 50;
    return 0;
}

/* The world's instance of the variant is gone (its `running` 0); the fake restarts nothing. */
static int fake_kill_instance(void *self, const struct kn_app_id *id, enum kn_variant v, char *why)
{
    struct fake_harness *h = self;
    struct kn_fake_app *a = kn_fake_world_app(&h->world, id, 0);

    (void)why;
    assert_true(a && a->running[v]);
    a->running[v] = 0;
    return 0;
}

static void ignore_done(int status, const char *message, void *data)
{
    (void)message;
    *(int *)data = status;
}

/* The fake keeps nothing but its world: a crash is its instance dropped while the apply hangs,
 * what that apply started left in the world. */
static int fake_crash_mid_apply(void *self, struct kn_platform **p, const struct kn_app_id *id,
                                const struct kn_variant_spec *spec, char *why)
{
    struct fake_harness *h = self;
    int status = 1;
    struct kn_platform_req req = {
        .id = *id, .deployment_id = 1, .stage_index = 0, .done = ignore_done, .data = &status};
    const struct kn_fake_app *a;
    int settled = h->world.settled;

    (void)why; /* spec's manifests were made never_ready: the apply hangs */
    assert_int_equal(kn_platform_apply(*p, &req, spec, NULL), 0);
    for (int i = 0; i < 100; i++) {
        a = kn_fake_world_app(&h->world, id, 0);
        if (a && a->starting[spec->variant]) {
            break;
        }
        kn_conf_spin(h->loop, 10);
    }
    a = kn_fake_world_app(&h->world, id, 0);
    assert_true(a && a->starting[spec->variant]);
    kn_platform_free(*p);
    kn_conf_spin(h->loop, 10);
    assert_int_equal(status, KN_ECANCELLED);
    fake_new(self, p);
    assert_int_equal(h->world.settled, settled + 1);
    return 0;
}

static const struct kn_conf_provider fake_provider = {
    .name = "fake",
    .setup = fake_setup,
    .teardown = fake_teardown,
    .platform_new = fake_new,
    .manifests = fake_manifests,
    .truth = fake_truth,
    .tamper_weight = fake_tamper_weight,
    .kill_instance = fake_kill_instance,
    .crash_mid_apply = fake_crash_mid_apply,
};

int main(void)
{
    struct kn_conf_provider minimal = fake_provider;
    int rc;

    fake_type = &kn_platform_fake;
    rc = kn_conf_run(&fake_provider);
    /* no canary, no baseline, no traffic split: the front end's skips, scenario by scenario */
    fake_minimal = kn_platform_fake;
    fake_minimal.name = "fake-minimal";
    fake_minimal.caps = KN_PLATFORM_APPLY | KN_PLATFORM_LIVE | KN_PLATFORM_CANCEL;
    fake_type = &fake_minimal;
    minimal.name = "fake-minimal";
    return kn_conf_run(&minimal) || rc;
}
