/*
 * The `LocalService` manifest of the local platform (design.md §3.5): a command that
 * kanaria runs as processes behind HAProxy.
 */
#ifndef KANARIA_PLATFORMS_LOCAL_SERVICE_H
#define KANARIA_PLATFORMS_LOCAL_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "kanaria/schema.h"

#define KN_LOCAL_SERVICE_KIND "LocalService"

struct kn_health_check {
    uint64_t set;
    char *path;
    long long interval_ms;
    long long timeout_ms;
    long long healthy_threshold;
};

struct kn_frontend {
    uint64_t set;
    char *bind;
};

struct kn_local_service_spec {
    uint64_t set;
    struct kn_strlist command; /* argv; {{port}} and {{variant}} are substituted per instance */
    struct kn_strmap env;
    char *working_dir;         /* relative to the app's folder */
    long long replicas;
    struct kn_health_check health_check;
    struct kn_frontend frontend;
};

struct kn_local_service {
    uint64_t set;
    char *api_version;
    char *kind;
    struct {
        uint64_t set;
        char *name;
        struct kn_strmap labels;
    } metadata;
    struct kn_local_service_spec spec;
};

extern const struct kn_schema kn_local_service_schema;

struct kn_app;

/* 1 when two `frontend.bind` addresses ("HOST:PORT") take the same connections: the same port
 * on the same host, or on every address ('*', '0.0.0.0', '::' or no host). */
int kn_local_service_binds_overlap(const char *a, const char *b);

/* The `spec.frontend.bind` of the app's LocalService (borrowed from app), and in *loc (when not
 * NULL) where it is written, borrowed likewise; NULL when the app has none. */
const char *kn_local_service_bind(const struct kn_app *app, struct kn_loc *loc);

/*
 * Two apps of one platform on one frontend.bind would split its connections between them. For
 * each app of `apps` whose bind an earlier app of the same platform declares, a located error at
 * its frontend.bind naming that app is added to its diags ("frontend.bind 127.0.0.1:8080 is
 * already used by app 'good' (apps/good/app.kanaria.yaml)"). Apps with errors already are
 * skipped, as owners too.
 */
void kn_local_service_check_binds(struct kn_app *const *apps, size_t n);

#endif /* KANARIA_PLATFORMS_LOCAL_SERVICE_H */
