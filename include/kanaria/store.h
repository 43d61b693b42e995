/*
 * kanaria — the state store: SQLite in WAL mode under dataDir, so that nothing is lost across
 * restarts. Schema changes are versioned migrations (PRAGMA user_version); a database from a
 * newer kanaria, a corrupt file or one that another process holds locked is refused at open with
 * a clear message, never overwritten. Every status change is one transaction that also appends
 * its event (the audit log).
 *
 * Not thread-safe: one struct kn_store belongs to the loop thread.
 */
#ifndef KANARIA_STORE_H
#define KANARIA_STORE_H

#include <stdint.h>

#include "kanaria/error.h"

struct kn_store;

enum kn_deploy_status {
    KN_DEPLOY_PENDING = 0,
    KN_DEPLOY_PLANNED,
    KN_DEPLOY_RUNNING,
    KN_DEPLOY_ROLLING_BACK,
    KN_DEPLOY_SUCCESS,
    KN_DEPLOY_FAILURE,
    KN_DEPLOY_CANCELLED,
    KN_DEPLOY_SUPERSEDED, /* a newer commit arrived before this one started */
    /* Not started, held by a start gate (kanaria/gate.h); its reason says why and until when.
     * Like PLANNED, a newer commit supersedes it and a cancel ends it CANCELLED. */
    KN_DEPLOY_BLOCKED,    /* the error-budget gate: an SLO's budget is spent */
    KN_DEPLOY_FROZEN,     /* a freeze window is open */
};

/* "PLANNED", ...; and back (KN_EINVAL for an unknown name). */
const char *kn_deploy_status_name(enum kn_deploy_status s);
int kn_deploy_status_parse(const char *s, enum kn_deploy_status *out);
/* SUCCESS, FAILURE, CANCELLED, SUPERSEDED */
int kn_deploy_status_is_final(enum kn_deploy_status s);
/* Not started yet: PENDING, PLANNED, BLOCKED, FROZEN */
int kn_deploy_status_is_waiting(enum kn_deploy_status s);

/* Open (creating when absent) the database at path and migrate it. KN_EIO for a corrupt file or
 * one that is locked, KN_EUNSUPPORTED for a newer schema; err says which and what to do. */
int kn_store_open(struct kn_store **out, const char *path, struct kn_error *err);
void kn_store_close(struct kn_store *st);

/* Why the last write failed for want of space or an I/O error (a full disk under dataDir), or
 * "" once a write has worked again; borrowed until the next call on st. *write_errors (when not
 * NULL) gets the number of writes that failed so since open. Kept in memory only. */
const char *kn_store_storage_error(const struct kn_store *st, long long *write_errors);

/* The WAL is checkpointed into the database file on a thread of the store's own (with a
 * connection of its own) each time it has grown by 1,000 pages, so that a write on the loop
 * seldom waits for a checkpoint's syncs: only past 4,000 pages, for the WAL to start again, does
 * a commit checkpoint what the thread has not copied yet; closing checkpoints what is left. The
 * checkpoints that thread has made since open (0 when it could not start: SQLite then
 * checkpoints inside the commits). */
long long kn_store_checkpoints(struct kn_store *st);

/* The schema version this build writes. */
int kn_store_schema_version(void);

/* ---- repositories -------------------------------------------------------------------------- */

struct kn_repo_state {
    char name[128];
    char head[41];       /* last fetched commit of the branch, "" before the first fetch */
    long long fetched_at; /* ms since the epoch of the last successful fetch, 0 never */
    char error[512];     /* last fetch error, "" when the last fetch worked */
    long long failing_since; /* ms since the epoch, 0 when not failing */
};

/* Record a successful fetch (clears the error) or a failed one (keeps head, sets error and,
 * when it was not failing yet, failing_since). */
int kn_store_repo_fetched(struct kn_store *st, const char *repo, const char *head,
                          long long now_ms);
int kn_store_repo_failed(struct kn_store *st, const char *repo, const char *error,
                         long long now_ms);
/* KN_ENOTFOUND when never recorded. */
int kn_store_repo_get(struct kn_store *st, const char *repo, struct kn_repo_state *out);

/* ---- apps -------------------------------------------------------------------------------- */

struct kn_app_state {
    char repo[128];
    char name[128];
    char path[512];          /* config path in the repository */
    char last_good[41];      /* commit of the last successful deployment, "" none */
    char last_seen[41];      /* last head the app was evaluated at, "" none */
    long long current_deployment; /* id of the deployment that is not final, 0 none */
    char *error;             /* validation errors at last_seen, "" when valid; owned */
    char rolled_back_from[41]; /* set after a rollback until a later deployment succeeds */
    char drift[512];         /* how the live state differs from last_good, "" in sync */
    long long drift_since;   /* ms since the epoch, 0 when in sync */
    int self_heal;           /* the last good commit asks for trigger.onOutOfSync */
    long long healed_at;     /* ms since the epoch of the last self-heal, 0 never */
    long long orphaned_at;   /* ms since the epoch: its folder left the repository; 0 it is there */
    long long pruned_at;     /* ms since the epoch: removed from its platform as an orphan; 0 not */
};

/* Texts of unbounded size in the structs below (an app's error, a deployment's message and
 * reason, an event's message, an analysis record's query and values) are strings that the struct
 * owns, never NULL once the store has filled it. A struct that a getter filled is the caller's:
 * it releases them with the struct's _release (which leaves NULLs; releasing twice is safe). A
 * struct handed to a callback is borrowed for the call: to keep it, copy it with _copy. */
void kn_app_state_release(struct kn_app_state *a);
void kn_app_state_copy(struct kn_app_state *dst, const struct kn_app_state *src);

/* Create or update the app's row (path, last_seen, error); keeps the rest. */
int kn_store_app_seen(struct kn_store *st, const char *repo, const char *app, const char *path,
                      const char *commit, const char *error);
/* The apps of `repo` seen at commit `from`, except those whose config path is one of `removed`,
 * are seen at `to` as they were (a detection that carried them over unloaded). */
int kn_store_apps_carry(struct kn_store *st, const char *repo, const char *from, const char *to,
                        const char *const *removed, size_t nremoved);
/* Caller releases *out with kn_app_state_release (on success only). */
int kn_store_app_get(struct kn_store *st, const char *repo, const char *app,
                     struct kn_app_state *out);

/* Record the app's drift ("" when in sync). A change from in sync to drifting appends a
 * DRIFT_DETECTED event with the text, the way back a DRIFT_RESOLVED one; the same drift again
 * writes nothing. */
int kn_store_app_drift(struct kn_store *st, const char *repo, const char *app, const char *drift,
                       long long now_ms);

/* Whether the app heals drift (from the config of its last successful commit). */
int kn_store_app_set_self_heal(struct kn_store *st, const char *repo, const char *app, int on);

/* Record a self-heal started now (for its rate limit). */
int kn_store_app_healed(struct kn_store *st, const char *repo, const char *app, long long now_ms);

/* The app's folder is gone from the repository's head (message says which and what follows):
 * mark it orphaned now, in one transaction with an APP_ORPHANED event. Said once: 1 when it was
 * marked now, 0 when it was orphaned already; KN_ENOTFOUND for an app never seen. */
int kn_store_app_orphan(struct kn_store *st, const char *repo, const char *app, const char *message,
                        long long now_ms);

/* The app is in the head again: no longer orphaned nor pruned, with an APP_RESTORED event.
 * 1 when it was orphaned, 0 when it was not (or is unknown). */
int kn_store_app_restore(struct kn_store *st, const char *repo, const char *app, long long now_ms);

/* The orphaned app was removed from its platform (instances, frontend, backend): pruned_at is
 * set and its drift cleared, with an APP_PRUNED event by `actor`. KN_EINVAL when the app is
 * not orphaned (it came back meanwhile), KN_ENOTFOUND when unknown. */
int kn_store_app_pruned(struct kn_store *st, const char *repo, const char *app, const char *actor,
                        const char *message, long long now_ms);

/* Calls cb for each app of repo (NULL: all), ordered by repo then name; a non-zero return stops
 * and is returned. */
typedef int (*kn_store_app_cb)(const struct kn_app_state *app, void *data);
int kn_store_apps(struct kn_store *st, const char *repo, kn_store_app_cb cb, void *data);

/* ---- deployments --------------------------------------------------------------------------- */

struct kn_deployment {
    long long id;
    char repo[128];
    char app[128];
    char commit[41];
    char author[256];
    char *message;           /* the commit's summary line; owned */
    char strategy[16];       /* QUICK_SYNC, PIPELINE */
    char summary[512];
    enum kn_deploy_status status;
    char *reason;            /* owned */
    long long created_at;    /* ms since the epoch */
    long long updated_at;
    long long started_at;    /* 0 until RUNNING */
    long long finished_at;   /* 0 until final */
    char trigger[64];        /* "commit", "self-heal", "sync by NAME", "rollback by NAME" */
    long long commit_time;   /* ms since the epoch: the commit's committer time; 0 not known */
};

/* See kn_app_state_release: the same for a deployment's texts. */
void kn_deployment_release(struct kn_deployment *d);
void kn_deployment_copy(struct kn_deployment *dst, const struct kn_deployment *src);

/* What the planner hands over for one app at one commit. */
struct kn_deployment_new {
    const char *repo;
    const char *app;
    const char *commit;
    const char *author;
    const char *message;
    const char *strategy;
    const char *summary;
    const char *plan_json;   /* the diff and anything else worth keeping; may be NULL */
    const char *trigger;     /* NULL or "commit": a new commit, deployed once; anything else
                                (see struct kn_deployment) deploys a commit again */
    long long commit_time;   /* ms since the epoch of the commit (its committer time), 0 unknown */
};

/*
 * Record a PLANNED deployment, in one transaction with its event. Newest wins: any deployment
 * of the same app that is PENDING, PLANNED, BLOCKED or FROZEN (not yet started) becomes SUPERSEDED with a reason
 * naming the new commit. A deployment already RUNNING is left alone; the new one waits behind it.
 * KN_EEXISTS (and nothing written) when the trigger is a commit and this app already has a
 * deployment for this commit.
 */
int kn_store_deployment_add(struct kn_store *st, const struct kn_deployment_new *d,
                            long long now_ms, long long *id);

/* Move a deployment to `status` with `reason` (may be NULL), in one transaction with its event.
 * Sets started_at/finished_at as the status implies; a final status clears the app's
 * current_deployment and, for SUCCESS, sets the app's last_good to its commit. KN_EINVAL for a
 * move out of a final status. */
int kn_store_deployment_set_status(struct kn_store *st, long long id,
                                   enum kn_deploy_status status, const char *reason,
                                   long long now_ms);

/* Replace the reason of a deployment that keeps its status (a gate's numbers that changed), with
 * no event. KN_EINVAL when it is final. */
int kn_store_deployment_set_reason(struct kn_store *st, long long id, const char *reason,
                                   long long now_ms);

/* Caller releases *out with kn_deployment_release (on success only). */
int kn_store_deployment_get(struct kn_store *st, long long id, struct kn_deployment *out);

/* The plan_json of a deployment (caller frees), or NULL. */
char *kn_store_deployment_plan(struct kn_store *st, long long id);

/* Deployments of an app, newest first, at most `limit` (0: all). */
typedef int (*kn_store_deployment_cb)(const struct kn_deployment *d, void *data);
int kn_store_deployments(struct kn_store *st, const char *repo, const char *app, int limit,
                         kn_store_deployment_cb cb, void *data);

/* The commit of the app's newest deployment triggered by a new commit (not a self-heal, sync or
 * rollback, which deploy an older one again) into out; "" when there is none. */
int kn_store_deployment_baseline(struct kn_store *st, const char *repo, const char *app,
                                 char out[41]);

/* Deployments that are not final (PENDING, PLANNED, BLOCKED, FROZEN, RUNNING, ROLLING_BACK),
 * oldest first: what a restart must resume. */
int kn_store_deployments_open(struct kn_store *st, kn_store_deployment_cb cb, void *data);

/* ---- stages ------------------------------------------------------------------------------- */

/* Per-stage status and key/value metadata for resumption, written by the pipeline engine. */
int kn_store_stage_set(struct kn_store *st, long long deployment, int index, const char *name,
                       const char *status, long long now_ms);
/* Metadata of the deployment itself (a cancel asked, ...) is kept under this index. */
#define KN_STORE_DEPLOYMENT_META (-1)
int kn_store_stage_meta_set(struct kn_store *st, long long deployment, int index,
                            const char *key, const char *value);
/* A stage's status ("RUNNING", ...) into status and when it started (ms; may be NULL).
 * KN_ENOTFOUND when the stage was never recorded. */
int kn_store_stage_get(struct kn_store *st, long long deployment, int index, char *status,
                       size_t size, long long *started_at);
/* The value (caller frees) or NULL. */
char *kn_store_stage_meta_get(struct kn_store *st, long long deployment, int index,
                              const char *key);

/* ---- events (the audit log) -------------------------------------------------------------- */

struct kn_event {
    long long id;
    long long at;          /* ms since the epoch */
    char type[32];         /* TRIGGERED, PLANNED, STAGE_STARTED, ..., SUPERSEDED, INVALID_APP,
                              APP_ORPHANED, APP_PRUNED, APP_RESTORED */
    char repo[128];
    char app[128];
    long long deployment;  /* 0 when none */
    char actor[128];       /* "kanaria" or the person */
    char *message;         /* owned */
};

/* See kn_app_state_release: the same for an event's message. */
void kn_event_release(struct kn_event *e);
void kn_event_copy(struct kn_event *dst, const struct kn_event *src);

int kn_store_event_add(struct kn_store *st, const char *type, const char *repo, const char *app,
                       long long deployment, const char *actor, const char *message,
                       long long now_ms);

/* Events with id > after_id (0: from the start), oldest first, at most limit (0: all):
 * kn_store_events_find with no filter. */
typedef int (*kn_store_event_cb)(const struct kn_event *e, void *data);
int kn_store_events(struct kn_store *st, long long after_id, int limit, kn_store_event_cb cb,
                    void *data);

/* Which events kn_store_events_find returns: each field unset ("" or NULL, 0) matches all. */
struct kn_event_filter {
    const char *repo;   /* borrowed */
    const char *app;    /* borrowed */
    const char *type;   /* borrowed */
    long long since_ms; /* at >= since_ms */
};

/* The events with id > after_id that match f (NULL: all), oldest first, at most limit (0: all;
 * held in memory at once, so a page's size): the audit log read a page at a time. KN_EINVAL
 * for a negative limit. */
int kn_store_events_find(struct kn_store *st, long long after_id, int limit,
                         const struct kn_event_filter *f, kn_store_event_cb cb, void *data);

/* ---- approvals and analysis records (written by later stages; the tables exist now) ------ */

/* decision is "APPROVE" or "REJECT". */
int kn_store_approval_add(struct kn_store *st, long long deployment, int stage,
                          const char *who, const char *decision, long long now_ms);

/* Each approval record of a stage, oldest first; a non-zero return of cb stops. */
typedef int (*kn_store_approval_cb)(const char *who, const char *decision, void *data);
int kn_store_approvals(struct kn_store *st, long long deployment, int stage,
                       kn_store_approval_cb cb, void *data);

int kn_store_analysis_add(struct kn_store *st, long long deployment, int stage,
                          const char *check, const char *query, const char *values_json,
                          const char *bound, const char *verdict, long long now_ms);

/* ---- readers for the API ----------------------------------------------------------------- */

struct kn_stage_state {
    int index;
    char name[64];
    char status[16];       /* NOT_STARTED, RUNNING, SUCCESS, FAILURE, CANCELLED, SKIPPED */
    long long started_at;  /* ms since the epoch, 0 not started */
    long long finished_at; /* 0 until final */
};

/* Each recorded stage of a deployment, by index; a non-zero return of cb stops and is
 * returned. cb may write to the store. */
typedef int (*kn_store_stage_cb)(const struct kn_stage_state *s, void *data);
int kn_store_stages(struct kn_store *st, long long deployment, kn_store_stage_cb cb, void *data);

/* Events of one deployment (its stage log lines among them), oldest first, at most limit (0: all),
 * the newest ones when there are more. */
int kn_store_deployment_events(struct kn_store *st, long long deployment, int limit,
                               kn_store_event_cb cb, void *data);

struct kn_approval_record {
    int stage;
    char who[128];
    char decision[16]; /* APPROVE, REJECT */
    long long at;      /* ms since the epoch */
};

/* Every approval record of a deployment, oldest first. */
typedef int (*kn_store_approval_record_cb)(const struct kn_approval_record *a, void *data);
int kn_store_approval_list(struct kn_store *st, long long deployment,
                           kn_store_approval_record_cb cb, void *data);

struct kn_analysis_record {
    long long id;
    int stage;
    long long at; /* ms since the epoch */
    char check[128];
    char *query;       /* owned */
    char *values_json; /* owned: every sample of the check, whatever their number */
    char bound[256];
    char verdict[32];
};

void kn_analysis_record_release(struct kn_analysis_record *r);

/* Every analysis record of a deployment, oldest first. */
typedef int (*kn_store_analysis_cb)(const struct kn_analysis_record *r, void *data);
int kn_store_analysis_list(struct kn_store *st, long long deployment, kn_store_analysis_cb cb,
                           void *data);

/* ---- readers for /metrics and the event feed ------------------------------------------------ */

/* A count that changes when an event may have been added: the inserts into the events table
 * this store has made (or tried: a transaction rolled back counts too) since it was opened, plus
 * SQLite's data_version, which moves when another connection commits (sqlite3 by hand). An
 * unchanged count means no new event: the feed reads nothing then. */
long long kn_store_events_written(const struct kn_store *st);

/* The id of the newest event into *out (0 when there is none). */
int kn_store_event_last_id(struct kn_store *st, long long *out);

/* One group of a counting query, by app name across repositories (what a dashboard shows);
 * what does not apply is "" or 0. */
struct kn_store_tally {
    char repo[128];     /* "" (reserved for a grouping by repository) */
    char app[128];
    char name[128];     /* deployments: the status; stages: the stage's name; analysis: check */
    char verdict[32];   /* analysis: the record's verdict */
    long long count;
    double sum_seconds; /* stages: the total time of the finished ones */
};

/* Each group, ordered by app and name; cb runs after the query is done (it may use the
 * store) and a non-zero return stops and is returned. */
typedef int (*kn_store_tally_cb)(const struct kn_store_tally *t, void *data);
/* Deployments by app and status. */
int kn_store_tally_deployments(struct kn_store *st, kn_store_tally_cb cb, void *data);
/* Finished stages (started_at and finished_at set) by app and stage name. */
int kn_store_tally_stages(struct kn_store *st, kn_store_tally_cb cb, void *data);
/* Analysis records by app, check and verdict. */
int kn_store_tally_analysis(struct kn_store *st, kn_store_tally_cb cb, void *data);

/* Deployments that ended in SUCCESS or FAILURE, by app, then finished_at (oldest first):
 * what the DORA metrics are computed from. */
int kn_store_outcomes(struct kn_store *st, kn_store_deployment_cb cb, void *data);

/* When a FAILURE deployment's failure showed and its rollback ran, ms since the epoch (0: not
 * recorded): its first analysis evaluation with verdict FAIL, its ROLLBACK stage's start and
 * end. */
struct kn_store_failure_times {
    long long deployment;
    long long first_fail_at;
    long long rollback_started_at;
    long long rollback_finished_at;
};

/* Each FAILURE deployment's times, by id; cb runs after the query is done and a non-zero return
 * stops and is returned. */
typedef int (*kn_store_failure_times_cb)(const struct kn_store_failure_times *t, void *data);
int kn_store_failure_times(struct kn_store *st, kn_store_failure_times_cb cb, void *data);

/* ---- notification state ------------------------------------------------------------------ */

/* A notification's saved value under key (controller/notify.h: "cursor", a deployment's Slack
 * message, an open PagerDuty incident): *out the value (caller frees), KN_ENOTFOUND when there is
 * none. */
int kn_store_notify_get(struct kn_store *st, const char *name, const char *key, char **out);
/* Set it; value NULL deletes it. Written when it returns 0. */
int kn_store_notify_set(struct kn_store *st, const char *name, const char *key, const char *value);

/* ---- platform memos ------------------------------------------------------------------------ */

/* A platform's memo for an app (include/kanaria/plugin/platform.h): *out the value (caller
 * frees), KN_ENOTFOUND when there is none. */
int kn_store_memo_get(struct kn_store *st, const char *platform, const char *repo,
                      const char *app, const char *key, char **out);
/* Set it; value NULL deletes it. Written when it returns 0. */
int kn_store_memo_set(struct kn_store *st, const char *platform, const char *repo,
                      const char *app, const char *key, const char *value);

#endif /* KANARIA_STORE_H */
