/*
 * The platform conformance suite: one list of scenarios, written against the front end
 * (include/kanaria/platform.h), that every provider must pass. Each provider brings a harness
 * (struct kn_conf_provider): how to make an instance of it, how to change something behind
 * kanaria's back, how to simulate a crash, and how to read the truth without asking the
 * provider (processes and HAProxy for local; the fake's world for the fake).
 *
 * Where a provider cannot do what a scenario needs, its harness says why and the scenario prints
 * a line "SKIPPED: <provider> <scenario>: <why>" and is reported as skipped, never as passed.
 */
#ifndef KANARIA_TESTS_CONFORMANCE_H
#define KANARIA_TESTS_CONFORMANCE_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

#include "kanaria/platform.h"

/* What runs of an app, read without the provider. */
struct kn_conf_truth {
    int instances[KN_VARIANT_COUNT]; /* running (processes alive, tasks, ...) */
    int routed[KN_VARIANT_COUNT];    /* taking traffic: in service at a weight above 0 */
    int servers[KN_VARIANT_COUNT];   /* in the routing layer at all */
    char commit[KN_VARIANT_COUNT][41];
    char ids[512]; /* the identities of what runs (pids, task ids), to tell a replacement */
};

#define KN_CONF_WHY 256

struct kn_conf_provider {
    const char *name;
    /* Why the provider replaces what runs when the same apply comes again (the idempotency key
     * of include/kanaria/plugin/platform.h not kept yet); NULL: it keeps it. */
    const char *reapply_replaces;
    /* Make the harness for one scenario: its own state under dir. 0, or 1 with why when the
     * provider cannot run here (the scenario is skipped). */
    int (*setup)(void **self, uv_loop_t *loop, const char *dir, char *why);
    /* Stop everything the scenario left running, and free. */
    void (*teardown)(void *self);
    /* A new platform instance over the harness's state (after a crash too). */
    void (*platform_new)(void *self, struct kn_platform **out);
    /* The canonical manifests of version `version` ("v1") of the app; never_ready: its
     * instances start but never become ready. New reference. */
    json_t *(*manifests)(void *self, const struct kn_app_id *id, const char *version,
                         int never_ready);
    /* The app's spec.<type> (kn_variant_spec.options, kn_desired.options), borrowed until
     * teardown; NULL (or no hook): it has none. */
    const void *(*options)(void *self, const struct kn_app_id *id);
    /* Read the truth of the app. */
    void (*truth)(void *self, const struct kn_app_id *id, struct kn_conf_truth *out);
    /* Set the weight of the app's variant v to a value kanaria did not set, behind its back.
     * 0, or 1 with why when the provider cannot be changed that way. */
    int (*tamper_weight)(void *self, const struct kn_app_id *id, enum kn_variant v, char *why);
    /* Kill one instance of the app's variant behind kanaria's back (SIGKILL, a task stopped).
     * 0, or 1 with why. */
    int (*kill_instance)(void *self, const struct kn_app_id *id, enum kn_variant v, char *why);
    /*
     * Start an apply of `spec` for the app in an instance that dies without its orderly stop
     * once the apply is under way (an instance started, nothing routed yet); *p (the instance
     * the scenario holds, freed first when the crash needs it gone) is then a new instance over
     * the same state. 0, or 1 with why when the provider cannot simulate it.
     */
    int (*crash_mid_apply)(void *self, struct kn_platform **p, const struct kn_app_id *id,
                           const struct kn_variant_spec *spec, char *why);
};

/* Run every scenario on the provider (a cmocka group); the status for main: 77 (ctest's skip)
 * when the provider could not run here. */
int kn_conf_run(const struct kn_conf_provider *prov);

/* Let the loop run for ms (its own timer keeps it awake). */
void kn_conf_spin(uv_loop_t *loop, long long ms);

#endif /* KANARIA_TESTS_CONFORMANCE_H */
