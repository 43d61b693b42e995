/*
 * kanaria — the controller configuration (`kanaria.yaml`).
 *
 * Parsed and validated through the schema tables in controller/config.c; every key is in the
 * reference `examples/kanaria.yaml` and in `kanaria help config`.
 */
#ifndef KANARIA_CONFIG_H
#define KANARIA_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "kanaria/schema.h"

struct kn_platform_type;
struct kn_metrics_type;

struct kn_repo_credentials {
    uint64_t set;
    char *username;
    char *token_file;
    char *ssh_key_file;
};

struct kn_repo_webhook {
    uint64_t set;
    char *secret_file;
};

struct kn_repo_config {
    uint64_t set;
    char *name;
    char *url;
    char *branch;
    long long poll_interval_ms;
    long long fetch_timeout_ms;       /* a whole fetch, then it is stopped */
    long long fetch_stall_timeout_ms; /* a fetch that receives nothing for this long is stopped */
    char *ca_file; /* https: PEM CA certificates the remote's certificate must chain to */
    struct kn_repo_credentials credentials;
    struct kn_repo_webhook webhook;
};

/*
 * A `platforms[]` entry: `name` and `type` here, every other key belongs to the type and is
 * parsed by its descriptor's config_schema into `options` (the local platform's struct
 * kn_local_config, ...). The type is looked up in kn_platform_types[]; an unknown one is a
 * located error listing the registered types.
 */
struct kn_platform_config {
    uint64_t set;
    char *name;
    char *type;                           /* the `type:` as written */
    const struct kn_platform_type *ptype; /* resolved from type; NULL only in a config that
                                             failed to load */
    void *options;                        /* owned: ptype->config_schema's struct */
};

/*
 * A `metricsProviders[]` entry, the same shape: its type's keys are in `options`. A type whose
 * descriptor names a platform_type (cloudwatch: ecs) borrows that platform's settings
 * (credentials, region, endpoint): the entry's `platform` key names a platforms[] entry of that
 * type, resolved into `platform` when the config loads; other types take no `platform`.
 */
struct kn_metrics_provider_config {
    uint64_t set;
    char *name;
    char *type;
    char *platform_name;                 /* the `platform:` as written, or NULL */
    const struct kn_metrics_type *mtype; /* resolved from type, in kn_metrics_types[] */
    const struct kn_platform_config *platform; /* resolved from platform_name: borrowed from
                                                  the same kn_config; NULL when none */
    void *options;                       /* owned: mtype->config_schema's struct */
};

enum kn_role {
    KN_ROLE_VIEWER = 0,
    KN_ROLE_APPROVER,
    KN_ROLE_OPERATOR,
    KN_ROLE_ADMIN,
};

struct kn_user_config {
    uint64_t set;
    char *name;
    int role; /* enum kn_role */
    char *token_sha256;
};

enum kn_notification_type {
    KN_NOTIFY_WEBHOOK = 0,
    KN_NOTIFY_SLACK,
    KN_NOTIFY_TEAMS,
    KN_NOTIFY_PAGERDUTY,
};

struct kn_notification_config {
    uint64_t set;
    char *name;
    int type; /* enum kn_notification_type */
    char *url;
    char *secret_file;
    char *token_file; /* slack: the bot token; pagerduty: the routing key */
    char *channel;    /* slack with a token: the channel posted to */
    char *template;   /* Mustache subset (controller/template.h); NULL: the built-in message */
    long long retry_for_ms; /* an event not delivered this long after its first attempt is
                             * given up */
    struct kn_strlist events;
    struct kn_strlist apps;
};

struct kn_tls_config {
    uint64_t set;
    char *cert_file;
    char *key_file;
};

struct kn_log_config {
    uint64_t set;
    int level;  /* enum kn_log_level */
    int format; /* enum kn_log_format */
};

struct kn_config {
    uint64_t set;
    char *data_dir;
    char *listen;
    char *external_url; /* where the web UI is reached, for links in notifications; or NULL */
    long long drift_interval_ms;
    struct kn_tls_config tls;
    struct kn_list repositories;      /* struct kn_repo_config */
    struct kn_list platforms;         /* struct kn_platform_config */
    struct kn_list metrics_providers; /* struct kn_metrics_provider_config */
    struct kn_list users;             /* struct kn_user_config */
    struct kn_list notifications;     /* struct kn_notification_config */
    struct kn_list freeze_windows;    /* struct kn_freeze_window (kanaria/freeze.h) */
    struct kn_log_config log;
    struct kn_yaml *yaml; /* owned: the parsed file, for locations */
};

extern const struct kn_schema kn_config_schema;

/* The names of events notifications can filter on, NULL-terminated. */
extern const char *const kn_event_names[];

/*
 * Load and validate `path`. On success *out is a new config (kn_config_free). On failure *out is
 * NULL, every problem is in diags (located), and the return is KN_ESCHEMA (or the loader's error:
 * KN_ENOENT, KN_EPARSE, KN_ETOOBIG, KN_ELIMIT, also added to diags).
 */
int kn_config_load(struct kn_config **out, const char *path, struct kn_diags *diags);

void kn_config_free(struct kn_config *cfg);

/* Lookups by name; NULL when absent. */
const struct kn_platform_config *kn_config_platform(const struct kn_config *cfg,
                                                    const char *name);
const struct kn_metrics_provider_config *kn_config_metrics_provider(const struct kn_config *cfg,
                                                                    const char *name);

/*
 * A platform entry of type `type` named `name` with every key of the type at its default: the
 * embedded default platform of a config without `platforms` (`local` with a managed HAProxy).
 * Fills *out (release with kn_config_platform_release); KN_EINVAL when no such type is
 * registered.
 */
int kn_config_platform_default(struct kn_platform_config *out, const char *name,
                               const char *type);
void kn_config_platform_release(struct kn_platform_config *p);

/*
 * What a reload (SIGHUP) cannot apply: the keys kanaria reads only at start (dataDir, listen, the
 * TLS files, driftInterval, every key of platforms and metricsProviders). Returns 1 and the first
 * such key that differs between the running config and cfg in key ("dataDir",
 * "platforms[0].type"; cut to size), or 0 when cfg can be applied as it is.
 */
int kn_config_restart_key(const struct kn_config *running, const struct kn_config *cfg,
                          char *key, size_t size);

#endif /* KANARIA_CONFIG_H */
