/*
 * The state store (include/kanaria/store.h): one SQLite database in WAL mode.
 *
 * Every value reaches SQL through a bound parameter: statements are prepared with `bind()`, whose
 * type string says how to bind each argument ('s' text with NULL as "", 't' text with NULL as
 * SQL NULL, 'l' long long, 'i' int), numbered ?1, ?2, ... in that order.
 *
 * Lists are read completely before the first callback runs, so a function that fails never also
 * calls its callback and a callback may itself write to the store.
 */
#include "kanaria/store.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "kanaria/alloc.h"
#include "kanaria/log.h"

/* How long a statement waits for another connection's write lock once the store is open. */
#define KN_STORE_BUSY_MS 500
/* How long opening waits for a lock another process holds on the database. kanaria.lock already
 * says that no other kanaria serves this dataDir, so the holder is brief: a reader of the store
 * (the sqlite3 shell, a backup, a script) whose close checkpoints the WAL, or one that recovers
 * the WAL a `kill -9` left. Refusing at once made a restart fail now and then. */
#define KN_STORE_OPEN_WAIT_MS 5000
/* Pages in the WAL after which a commit asks for a checkpoint (SQLite's automatic checkpoint
 * runs at 1,000 too, but inside the commit that crosses it: on the loop, waiting for the disk). */
#define KN_STORE_CHECKPOINT_PAGES 1000
/* Pages in the WAL past which the loop's connection checkpoints itself after a commit. The WAL
 * starts again only at a write that finds every frame copied, and while the loop writes, the
 * checkpointer's copy rarely ends so: without this, the WAL grows without end (hundreds of MB
 * while 100 apps deploy). The checkpointer has copied all but the last frames by then, and this
 * happens once every KN_STORE_WAL_LIMIT_PAGES, not every KN_STORE_CHECKPOINT_PAGES. */
#define KN_STORE_WAL_LIMIT_PAGES 4000

#define KN_STORE_NOT_STARTED "('PENDING', 'PLANNED', 'BLOCKED', 'FROZEN')"
#define KN_STORE_NOT_FINAL                                                                         \
    "('PENDING', 'PLANNED', 'BLOCKED', 'FROZEN', 'RUNNING', 'ROLLING_BACK')"

/* Checkpoints the WAL on a thread of its own, with a connection of its own, when a commit
 * says the WAL has grown: no write on the loop waits for the syncs of a checkpoint. */
struct kn_store_checkpointer {
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cv;
    sqlite3 *db;
    int wanted; /* a commit asked for a checkpoint (under mu, like stop and done) */
    int stop;
    long long done; /* checkpoints made */
    int asked_at; /* the WAL's pages at the last ask (the loop's thread alone reads it) */
};

struct kn_store {
    sqlite3 *db;
    struct kn_store_checkpointer *checkpointer; /* NULL: SQLite's automatic checkpoints */
    char *path;
    char storage_error[256]; /* why the last write failed for want of space or I/O, "" */
    long long write_errors;  /* writes that failed so, since open */
    long long events_written; /* inserts into events asked for (committed or not), since open */
};

/* Migration i brings user_version from i to i + 1, in one transaction with the bump. Never edit
 * one that has shipped: add another. */
static const char *const kn_store_migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE repositories ("
    "  name TEXT PRIMARY KEY,"
    "  head TEXT NOT NULL DEFAULT '',"
    "  fetched_at INTEGER NOT NULL DEFAULT 0,"
    "  error TEXT NOT NULL DEFAULT '',"
    "  failing_since INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE TABLE apps ("
    "  repo TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  path TEXT NOT NULL DEFAULT '',"
    "  last_good TEXT NOT NULL DEFAULT '',"
    "  last_seen TEXT NOT NULL DEFAULT '',"
    "  current_deployment INTEGER NOT NULL DEFAULT 0,"
    "  error TEXT NOT NULL DEFAULT '',"
    "  rolled_back_from TEXT NOT NULL DEFAULT '',"
    "  PRIMARY KEY (repo, name)"
    ");"
    "CREATE TABLE deployments ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  repo TEXT NOT NULL,"
    "  app TEXT NOT NULL,"
    "  commit_id TEXT NOT NULL,"
    "  author TEXT NOT NULL DEFAULT '',"
    "  message TEXT NOT NULL DEFAULT '',"
    "  strategy TEXT NOT NULL DEFAULT '',"
    "  summary TEXT NOT NULL DEFAULT '',"
    "  plan_json TEXT,"
    "  status TEXT NOT NULL,"
    "  reason TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL DEFAULT 0,"
    "  updated_at INTEGER NOT NULL DEFAULT 0,"
    "  started_at INTEGER NOT NULL DEFAULT 0,"
    "  finished_at INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE (repo, app, commit_id)"
    ");"
    "CREATE INDEX deployments_by_app ON deployments (repo, app, id);"
    "CREATE INDEX deployments_by_status ON deployments (status, id);"
    "CREATE TABLE stages ("
    "  deployment INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,"
    "  idx INTEGER NOT NULL,"
    "  name TEXT NOT NULL DEFAULT '',"
    "  status TEXT NOT NULL DEFAULT '',"
    "  started_at INTEGER NOT NULL DEFAULT 0,"
    "  finished_at INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (deployment, idx)"
    ");"
    "CREATE TABLE stage_meta ("
    "  deployment INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,"
    "  idx INTEGER NOT NULL,"
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL DEFAULT '',"
    "  PRIMARY KEY (deployment, idx, key)"
    ");"
    /* The audit log outlives what it talks about: no foreign key. */
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  at INTEGER NOT NULL,"
    "  type TEXT NOT NULL,"
    "  repo TEXT NOT NULL DEFAULT '',"
    "  app TEXT NOT NULL DEFAULT '',"
    "  deployment INTEGER NOT NULL DEFAULT 0,"
    "  actor TEXT NOT NULL DEFAULT '',"
    "  message TEXT NOT NULL DEFAULT ''"
    ");"
    "CREATE INDEX events_by_deployment ON events (deployment, id);"
    "CREATE INDEX events_by_app ON events (repo, app, id);"
    "CREATE TABLE approvals ("
    "  deployment INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,"
    "  stage INTEGER NOT NULL,"
    "  who TEXT NOT NULL,"
    "  decision TEXT NOT NULL,"
    "  at INTEGER NOT NULL"
    ");"
    "CREATE INDEX approvals_by_stage ON approvals (deployment, stage);"
    "CREATE TABLE analysis_records ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  deployment INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,"
    "  stage INTEGER NOT NULL,"
    "  at INTEGER NOT NULL,"
    "  check_name TEXT NOT NULL DEFAULT '',"
    "  query TEXT NOT NULL DEFAULT '',"
    "  values_json TEXT NOT NULL DEFAULT '',"
    "  bound TEXT NOT NULL DEFAULT '',"
    "  verdict TEXT NOT NULL DEFAULT ''"
    ");"
    "CREATE INDEX analysis_by_stage ON analysis_records (deployment, stage, id);",

    /* 1 -> 2: a commit may be deployed again (self-heal, sync, a rollback to it), so the
     * deployments table loses its unique (repo, app, commit) and says what triggered each; apps
     * keep their drift and whether they heal it. Run with foreign keys off (open_migrate). */
    "CREATE TABLE deployments_v2 ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  repo TEXT NOT NULL,"
    "  app TEXT NOT NULL,"
    "  commit_id TEXT NOT NULL,"
    "  author TEXT NOT NULL DEFAULT '',"
    "  message TEXT NOT NULL DEFAULT '',"
    "  strategy TEXT NOT NULL DEFAULT '',"
    "  summary TEXT NOT NULL DEFAULT '',"
    "  plan_json TEXT,"
    "  status TEXT NOT NULL,"
    "  reason TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL DEFAULT 0,"
    "  updated_at INTEGER NOT NULL DEFAULT 0,"
    "  started_at INTEGER NOT NULL DEFAULT 0,"
    "  finished_at INTEGER NOT NULL DEFAULT 0,"
    "  trigger TEXT NOT NULL DEFAULT 'commit'"
    ");"
    "INSERT INTO deployments_v2 (id, repo, app, commit_id, author, message, strategy, summary,"
    "  plan_json, status, reason, created_at, updated_at, started_at, finished_at)"
    "  SELECT id, repo, app, commit_id, author, message, strategy, summary, plan_json, status,"
    "  reason, created_at, updated_at, started_at, finished_at FROM deployments;"
    "DROP TABLE deployments;"
    "ALTER TABLE deployments_v2 RENAME TO deployments;"
    "CREATE INDEX deployments_by_app ON deployments (repo, app, id);"
    "CREATE INDEX deployments_by_status ON deployments (status, id);"
    "CREATE INDEX deployments_by_commit ON deployments (repo, app, commit_id);"
    "ALTER TABLE apps ADD COLUMN drift TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE apps ADD COLUMN drift_since INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE apps ADD COLUMN self_heal INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE apps ADD COLUMN healed_at INTEGER NOT NULL DEFAULT 0;",

    /* 2 -> 3: an app whose folder left the repository is orphaned (it keeps running, shown as
     * such), and pruned once it has been removed from its platform. */
    ("ALTER TABLE apps ADD COLUMN orphaned_at INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE apps ADD COLUMN pruned_at INTEGER NOT NULL DEFAULT 0;"),

    /* 3 -> 4: a platform's small memo per app (kn_store_memo_get/set), such as the weights of a
     * load balancer's rule before kanaria changed them. */
    ("CREATE TABLE platform_memos ("
     "  platform TEXT NOT NULL,"
     "  repo TEXT NOT NULL,"
     "  app TEXT NOT NULL,"
     "  key TEXT NOT NULL,"
     "  value TEXT NOT NULL,"
     "  PRIMARY KEY (platform, repo, app, key)"
     ");"),

    /* 4 -> 5: what each notification keeps across restarts (kn_store_notify_get/set): the id
     * of the last event it delivered, the Slack message of a deployment, an open incident. */
    ("CREATE TABLE notification_state ("
     "  name TEXT NOT NULL,"
     "  key TEXT NOT NULL,"
     "  value TEXT NOT NULL,"
     "  PRIMARY KEY (name, key)"
     ");"),

    /* 5 -> 6: when the deployed commit was made (its committer time, ms), so that lead time counts
     * from the commit; 0 for deployments recorded before, and when it is not known. */
    "ALTER TABLE deployments ADD COLUMN commit_time INTEGER NOT NULL DEFAULT 0;",
};

#define KN_STORE_NMIGRATIONS ((int)(sizeof(kn_store_migrations) / sizeof(kn_store_migrations[0])))

static const char *const kn_deploy_status_names[] = {
    [KN_DEPLOY_PENDING] = "PENDING",     [KN_DEPLOY_PLANNED] = "PLANNED",
    [KN_DEPLOY_RUNNING] = "RUNNING",     [KN_DEPLOY_ROLLING_BACK] = "ROLLING_BACK",
    [KN_DEPLOY_SUCCESS] = "SUCCESS",     [KN_DEPLOY_FAILURE] = "FAILURE",
    [KN_DEPLOY_CANCELLED] = "CANCELLED", [KN_DEPLOY_SUPERSEDED] = "SUPERSEDED",
    [KN_DEPLOY_BLOCKED] = "BLOCKED",     [KN_DEPLOY_FROZEN] = "FROZEN",
};

#define KN_DEPLOY_NSTATUS                                                                          \
    ((int)(sizeof(kn_deploy_status_names) / sizeof(kn_deploy_status_names[0])))

const char *kn_deploy_status_name(enum kn_deploy_status s)
{
    if ((int)s < 0 || (int)s >= KN_DEPLOY_NSTATUS) {
        return "?";
    }
    return kn_deploy_status_names[s];
}

int kn_deploy_status_parse(const char *s, enum kn_deploy_status *out)
{
    int rc = KN_EINVAL;

    if (!s) {
        goto out;
    }
    for (int i = 0; i < KN_DEPLOY_NSTATUS; i++) {
        if (strcmp(s, kn_deploy_status_names[i]) == 0) {
            *out = (enum kn_deploy_status)i;
            rc = 0;
            break;
        }
    }
out:
    return rc;
}

int kn_deploy_status_is_final(enum kn_deploy_status s)
{
    return s == KN_DEPLOY_SUCCESS || s == KN_DEPLOY_FAILURE || s == KN_DEPLOY_CANCELLED ||
           s == KN_DEPLOY_SUPERSEDED;
}

int kn_deploy_status_is_waiting(enum kn_deploy_status s)
{
    return s == KN_DEPLOY_PENDING || s == KN_DEPLOY_PLANNED || s == KN_DEPLOY_BLOCKED ||
           s == KN_DEPLOY_FROZEN;
}

int kn_store_schema_version(void)
{
    return KN_STORE_NMIGRATIONS;
}

/* ---- SQLite at the boundary ---------------------------------------------------------------- */

/* Translate an SQLite result code (extended codes are on) to a KN_E* code. Expected outcomes
 * (a duplicate, a missing parent row) are the caller's to report; anything else is logged here
 * with SQLite's message, which is the only place it is kept. */
static int sql_fail(struct kn_store *st, int src, const char *what)
{
    int rc;

    switch (src) {
    case SQLITE_NOMEM:
        rc = KN_ENOMEM;
        break;
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        rc = KN_EEXISTS;
        break;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        rc = KN_ENOTFOUND;
        break;
    case SQLITE_TOOBIG:
        rc = KN_ETOOBIG;
        break;
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
        rc = KN_EINVAL;
        break;
    default:
        rc = (src & 0xff) == SQLITE_CONSTRAINT ? KN_EINVAL : KN_EIO;
        break;
    }
    /* A full disk (or one that fails writes) under dataDir: shown until a write works again. */
    if ((src & 0xff) == SQLITE_FULL || src == SQLITE_IOERR_WRITE || src == SQLITE_IOERR_FSYNC ||
        src == SQLITE_IOERR_TRUNCATE || src == SQLITE_IOERR_SHMSIZE) {
        snprintf(st->storage_error, sizeof(st->storage_error), "cannot write '%s': %s",
                 st->path, sqlite3_errstr(src));
        st->write_errors++;
    }
    if (rc != KN_EEXISTS && rc != KN_ENOTFOUND) {
        kn_log_error("store", "%s: %s (%s)", what, sqlite3_errmsg(st->db), sqlite3_errstr(src));
    }
    return rc;
}

static int bindv(struct kn_store *st, sqlite3_stmt *s, const char *types, va_list ap)
{
    int src = SQLITE_OK;
    const char *text;

    for (int i = 0; types[i] && src == SQLITE_OK; i++) {
        switch (types[i]) {
        case 's':
            text = va_arg(ap, const char *);
            src = sqlite3_bind_text(s, i + 1, text ? text : "", -1, SQLITE_TRANSIENT);
            break;
        case 't':
            text = va_arg(ap, const char *);
            src = text ? sqlite3_bind_text(s, i + 1, text, -1, SQLITE_TRANSIENT)
                       : sqlite3_bind_null(s, i + 1);
            break;
        case 'l':
            src = sqlite3_bind_int64(s, i + 1, va_arg(ap, long long));
            break;
        case 'i':
            src = sqlite3_bind_int(s, i + 1, va_arg(ap, int));
            break;
        default:
            src = SQLITE_MISUSE;
            break;
        }
    }
    return src == SQLITE_OK ? 0 : sql_fail(st, src, "bind");
}

/* Prepare sql and bind the arguments described by types; *out is NULL on failure. */
static int prepare(struct kn_store *st, sqlite3_stmt **out, const char *sql, const char *types, ...)
{
    va_list ap;
    int src;
    int rc = 0;

    *out = NULL;
    src = sqlite3_prepare_v2(st->db, sql, -1, out, NULL);
    if (src != SQLITE_OK) {
        rc = sql_fail(st, src, "prepare");
        goto out;
    }
    va_start(ap, types);
    rc = bindv(st, *out, types, ap);
    va_end(ap);
out:
    if (rc < 0) {
        sqlite3_finalize(*out);
        *out = NULL;
    }
    return rc;
}

/* 1 for a row, 0 when done, or a KN_E* code. */
static int step(struct kn_store *st, sqlite3_stmt *s)
{
    int src = sqlite3_step(s);

    if (src == SQLITE_ROW) {
        return 1;
    }
    if (src == SQLITE_DONE) {
        /* a write that is committed (no transaction left open) */
        if (!sqlite3_stmt_readonly(s) && sqlite3_get_autocommit(st->db)) {
            st->storage_error[0] = '\0';
        }
        return 0;
    }
    return sql_fail(st, src, "step");
}

/* Run a statement that returns no rows we want. */
static int run(struct kn_store *st, const char *sql, const char *types, ...)
{
    sqlite3_stmt *s = NULL;
    va_list ap;
    int src;
    int rc = 0;

    src = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    if (src != SQLITE_OK) {
        rc = sql_fail(st, src, "prepare");
        goto out;
    }
    va_start(ap, types);
    rc = bindv(st, s, types, ap);
    va_end(ap);
    while (rc == 0 && (rc = step(st, s)) == 1) {
        rc = 0;
    }
out:
    sqlite3_finalize(s);
    return rc;
}

static void col_copy(char *dst, size_t size, sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);

    snprintf(dst, size, "%s", t ? (const char *)t : "");
}

/* A copy of a text column (caller frees), "" for SQL NULL: the texts of unbounded size. */
static char *col_text(sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);

    return kn_strdup(t ? (const char *)t : "");
}

/* A copy of a text column (caller frees), NULL for SQL NULL. */
static char *col_dup(sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);

    return t ? kn_strdup((const char *)t) : NULL;
}

static char *dup_text(const char *t)
{
    return kn_strdup(t ? t : "");
}

void kn_app_state_release(struct kn_app_state *a)
{
    if (a) {
        free(a->error);
        a->error = NULL;
    }
}

void kn_app_state_copy(struct kn_app_state *dst, const struct kn_app_state *src)
{
    *dst = *src;
    dst->error = dup_text(src->error);
}

void kn_deployment_release(struct kn_deployment *d)
{
    if (d) {
        free(d->message);
        free(d->reason);
        d->message = NULL;
        d->reason = NULL;
    }
}

void kn_deployment_copy(struct kn_deployment *dst, const struct kn_deployment *src)
{
    *dst = *src;
    dst->message = dup_text(src->message);
    dst->reason = dup_text(src->reason);
}

void kn_event_release(struct kn_event *e)
{
    if (e) {
        free(e->message);
        e->message = NULL;
    }
}

void kn_event_copy(struct kn_event *dst, const struct kn_event *src)
{
    *dst = *src;
    dst->message = dup_text(src->message);
}

void kn_analysis_record_release(struct kn_analysis_record *r)
{
    if (r) {
        free(r->query);
        free(r->values_json);
        r->query = NULL;
        r->values_json = NULL;
    }
}

static int tx_begin(struct kn_store *st)
{
    return run(st, "BEGIN IMMEDIATE", "");
}

/* Commit when rc is 0, else roll back; returns rc, or the commit's failure. */
static int tx_end(struct kn_store *st, int rc)
{
    if (rc >= 0 && (rc = run(st, "COMMIT", "")) == 0) {
        st->storage_error[0] = '\0'; /* COMMIT counts as read-only for step() */
    }
    if (rc < 0 && !sqlite3_get_autocommit(st->db)) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

/* ---- open, check, migrate ------------------------------------------------------------------ */

/* The message for a failure while opening, after what SQLite said. */
static int open_fail(struct kn_store *st, int src, const char *what, struct kn_error *err)
{
    const char *msg = sqlite3_errmsg(st->db);

    switch (src & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return kn_error_set(err, KN_EIO, NULL, "'%s' is locked by another process (waited %d s)",
                            st->path, KN_STORE_OPEN_WAIT_MS / 1000);
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return kn_error_set(err, KN_EIO, NULL,
                            "'%s' is not a kanaria database or is corrupt: %s (move it away to "
                            "start afresh; nothing was changed)",
                            st->path, msg);
    case SQLITE_NOMEM:
        return kn_error_set(err, KN_ENOMEM, NULL, "'%s': %s", st->path, msg);
    default:
        return kn_error_set(err, KN_EIO, NULL, "'%s': %s: %s", st->path, what, msg);
    }
}

/* Run a one-row query at open; *text (when not NULL) gets a copy of the first column, *num its
 * integer value. */
static int open_query(struct kn_store *st, const char *sql, char **text, int *num,
                      struct kn_error *err)
{
    sqlite3_stmt *s = NULL;
    int src;
    int rc = 0;

    src = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    if (src == SQLITE_OK) {
        src = sqlite3_step(s);
    }
    if (src != SQLITE_ROW) {
        rc = open_fail(st, src, sql, err);
        goto out;
    }
    if (text) {
        *text = col_dup(s, 0);
    }
    if (num) {
        *num = sqlite3_column_int(s, 0);
    }
out:
    sqlite3_finalize(s);
    return rc;
}

static int open_exec(struct kn_store *st, const char *sql, struct kn_error *err)
{
    int src = sqlite3_exec(st->db, sql, NULL, NULL, NULL);

    return src == SQLITE_OK ? 0 : open_fail(st, src, sql, err);
}

/* Every table and column that schema `version` has must be in the file: a store that lost a
 * table would start and then fail every write. The reference is an in-memory database brought to
 * the same version by the same migrations, so the check follows each new migration by itself. */
static int open_check_schema(struct kn_store *st, int version, struct kn_error *err)
{
    static const char want_sql[] =
        "SELECT m.name, c.name FROM sqlite_master AS m, pragma_table_info(m.name) AS c "
        "WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, c.cid";
    static const char got_sql[] =
        "SELECT (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1), "
        "(SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2)";
    sqlite3 *ref = NULL;
    sqlite3_stmt *want = NULL;
    sqlite3_stmt *got = NULL;
    const char *table;
    const char *column;
    int src;
    int rc = 0;

    if (version == 0) {
        goto out;
    }
    src = sqlite3_open_v2(":memory:", &ref, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    for (int i = 0; i < version && src == SQLITE_OK; i++) {
        src = sqlite3_exec(ref, kn_store_migrations[i], NULL, NULL, NULL);
    }
    if (src == SQLITE_OK) {
        src = sqlite3_prepare_v2(ref, want_sql, -1, &want, NULL);
    }
    if (src != SQLITE_OK) {
        rc = kn_error_set(err, src == SQLITE_NOMEM ? KN_ENOMEM : KN_EIO, NULL,
                          "'%s': cannot build schema %d to compare: %s", st->path, version,
                          ref ? sqlite3_errmsg(ref) : sqlite3_errstr(src));
        goto out;
    }
    if ((src = sqlite3_prepare_v2(st->db, got_sql, -1, &got, NULL)) != SQLITE_OK) {
        rc = open_fail(st, src, "schema check", err);
        goto out;
    }
    while ((src = sqlite3_step(want)) == SQLITE_ROW) {
        table = (const char *)sqlite3_column_text(want, 0);
        column = (const char *)sqlite3_column_text(want, 1);
        sqlite3_reset(got);
        sqlite3_bind_text(got, 1, table, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(got, 2, column, -1, SQLITE_TRANSIENT);
        if ((src = sqlite3_step(got)) != SQLITE_ROW) {
            rc = open_fail(st, src, "schema check", err);
            goto out;
        }
        if (sqlite3_column_int(got, 0) == 0 || sqlite3_column_int(got, 1) == 0) {
            rc = kn_error_set(err, KN_EIO, NULL,
                              "'%s' is not a kanaria database or is corrupt: schema %d has a "
                              "table '%s'%s%s%s but the file has not (move it away to start "
                              "afresh; nothing was changed)",
                              st->path, version, table,
                              sqlite3_column_int(got, 0) ? " with a column '" : "",
                              sqlite3_column_int(got, 0) ? column : "",
                              sqlite3_column_int(got, 0) ? "'" : "");
            goto out;
        }
    }
    if (src != SQLITE_DONE) {
        rc = kn_error_set(err, KN_EIO, NULL, "'%s': cannot read schema %d to compare: %s",
                          st->path, version, sqlite3_errmsg(ref));
    }
out:
    sqlite3_finalize(got);
    sqlite3_finalize(want);
    sqlite3_close(ref);
    return rc;
}

/* Everything that may refuse the file, before anything writes to it. */
static int open_check(struct kn_store *st, int *version, struct kn_error *err)
{
    char *check = NULL;
    int objects = 0;
    int rc = 0;

    if ((rc = open_query(st, "PRAGMA quick_check", &check, NULL, err)) < 0) {
        goto out;
    }
    if (!check || strcmp(check, "ok") != 0) {
        /* The report spans lines ("*** in database main ***\nTree 2 page 2: ..."). */
        for (char *p = check; p && *p; p++) {
            *p = *p == '\n' ? ' ' : *p;
        }
        rc = kn_error_set(err, KN_EIO, NULL,
                          "'%s' is not a kanaria database or is corrupt: %.160s (move it "
                          "away to start afresh; nothing was changed)",
                          st->path, check ? check : "integrity check failed");
        goto out;
    }
    if ((rc = open_query(st, "PRAGMA user_version", NULL, version, err)) < 0) {
        goto out;
    }
    if (*version > kn_store_schema_version()) {
        rc = kn_error_set(err, KN_EUNSUPPORTED, NULL,
                          "'%s' was written by a newer kanaria (schema %d, this one knows %d)",
                          st->path, *version, kn_store_schema_version());
        goto out;
    }
    /* Version 0 with tables in it is some other program's database: migrations are atomic, so
     * kanaria never leaves one like that. */
    if (*version == 0) {
        if ((rc = open_query(st, "SELECT count(*) FROM sqlite_master", NULL, &objects, err)) < 0) {
            goto out;
        }
        if (objects > 0) {
            rc = kn_error_set(err, KN_EIO, NULL,
                              "'%s' is not a kanaria database or is corrupt: it holds tables but "
                              "no kanaria schema version (move it away to start afresh; nothing "
                              "was changed)",
                              st->path);
            goto out;
        }
    }
    if ((rc = open_check_schema(st, *version, err)) < 0) {
        goto out;
    }
    /* Takes the write lock, so a lock held past the busy timeout is refused here. */
    if ((rc = open_exec(st, "BEGIN IMMEDIATE", err)) < 0) {
        goto out;
    }
    rc = open_exec(st, "ROLLBACK", err);
out:
    free(check);
    return rc;
}

static int open_setup(struct kn_store *st, struct kn_error *err)
{
    char *mode = NULL;
    int rc = 0;

    if ((rc = open_query(st, "PRAGMA journal_mode=WAL", &mode, NULL, err)) < 0) {
        goto out;
    }
    if (!mode || strcmp(mode, "wal") != 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "'%s': cannot use WAL mode (journal mode is %s)",
                          st->path, mode ? mode : "unknown");
        goto out;
    }
    if ((rc = open_exec(st, "PRAGMA foreign_keys=ON", err)) < 0) {
        goto out;
    }
    rc = open_exec(st, "PRAGMA synchronous=NORMAL", err);
out:
    free(mode);
    return rc;
}

static int open_migrate(struct kn_store *st, int version, struct kn_error *err)
{
    char bump[64];
    int src;
    int rc = 0;

    /* A migration may rebuild a table: its rows must not cascade away meanwhile. The pragma
     * does nothing inside a transaction, so it is set around them. */
    if (version < KN_STORE_NMIGRATIONS && (rc = open_exec(st, "PRAGMA foreign_keys=OFF", err)) < 0) {
        return rc;
    }
    for (int i = version; i < KN_STORE_NMIGRATIONS && rc == 0; i++) {
        /* The version is our own loop counter, not outside input. */
        snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", i + 1);
        if ((rc = open_exec(st, "BEGIN IMMEDIATE", err)) < 0) {
            break;
        }
        src = sqlite3_exec(st->db, kn_store_migrations[i], NULL, NULL, NULL);
        if (src == SQLITE_OK) {
            src = sqlite3_exec(st->db, bump, NULL, NULL, NULL);
        }
        if (src == SQLITE_OK) {
            src = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
        }
        if (src != SQLITE_OK) {
            rc = kn_error_set(err, (src & 0xff) == SQLITE_NOMEM ? KN_ENOMEM : KN_EIO, NULL,
                              "'%s': migration to schema %d failed: %s", st->path, i + 1,
                              sqlite3_errmsg(st->db));
            if (!sqlite3_get_autocommit(st->db)) {
                sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
            }
        }
    }
    if (rc == 0) {
        rc = open_exec(st, "PRAGMA foreign_keys=ON", err);
    }
    return rc;
}

/* Remove path's WAL and shared-memory files, which SQLite names after it. */
static void remove_wal_files(const char *path)
{
    char *wal = kn_asprintf("%s-wal", path);
    char *shm = kn_asprintf("%s-shm", path);

    unlink(wal);
    unlink(shm);
    free(wal);
    free(shm);
}

/* A new store is made under a temporary name and renamed into place once migrated, so that a
 * `path` that exists is always a store kanaria finished creating: an empty or half-made file is
 * never taken for a new store. The caller has checked that `path` does not exist. */
static int store_create(const char *path, struct kn_error *err)
{
    struct kn_store tmp = {.path = kn_asprintf("%s.new", path)};
    char *wal = kn_asprintf("%s-wal", path);
    struct stat sb;
    int src;
    int rc = 0;

    /* SQLite would replay a WAL it finds beside the new file into it. */
    if (stat(wal, &sb) == 0 && sb.st_size > 0) {
        rc = kn_error_set(err, KN_EIO, NULL,
                          "'%s' is there without its database '%s' (move it away, or put the "
                          "database back; nothing was changed)",
                          wal, path);
        goto out;
    }
    /* what a creation that was killed half-way left */
    unlink(tmp.path);
    remove_wal_files(tmp.path);
    src = sqlite3_open_v2(tmp.path, &tmp.db,
                          SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        rc = kn_error_set(err, src == SQLITE_NOMEM ? KN_ENOMEM : KN_EIO, NULL,
                          "cannot open '%s': %s", path,
                          tmp.db ? sqlite3_errmsg(tmp.db) : sqlite3_errstr(src));
        goto out;
    }
    sqlite3_extended_result_codes(tmp.db, 1);
    sqlite3_busy_timeout(tmp.db, KN_STORE_OPEN_WAIT_MS);
    if ((rc = open_setup(&tmp, err)) < 0 || (rc = open_migrate(&tmp, 0, err)) < 0) {
        goto out;
    }
    /* The last connection's close checkpoints the WAL into the file. */
    src = sqlite3_close(tmp.db);
    tmp.db = NULL;
    if (src != SQLITE_OK) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot create '%s': %s", path, sqlite3_errstr(src));
        goto out;
    }
    remove_wal_files(path);
    if (rename(tmp.path, path) < 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot create '%s': %s", path, strerror(errno));
        goto out;
    }
out:
    sqlite3_close(tmp.db);
    if (rc < 0) {
        unlink(tmp.path);
    }
    remove_wal_files(tmp.path);
    free(tmp.path);
    free(wal);
    return rc;
}

/* The WAL hook of the loop's connection, after each commit: wake the checkpointer once the WAL
 * has grown by KN_STORE_CHECKPOINT_PAGES since it last did. Not at every commit past that: while
 * the loop writes, a checkpoint rarely copies the last frames, the WAL does not start again, and
 * each commit would cost a checkpoint and its syncs. */
static int checkpoint_wanted(void *data, sqlite3 *db, const char *name, int pages)
{
    struct kn_store_checkpointer *c = data;

    if (pages < c->asked_at) {
        c->asked_at = 0; /* the WAL started again */
    }
    if (pages >= KN_STORE_WAL_LIMIT_PAGES) {
        /* busy when the checkpointer runs: the next commit tries again */
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        return SQLITE_OK;
    }
    if (pages - c->asked_at >= KN_STORE_CHECKPOINT_PAGES) {
        c->asked_at = pages;
        uv_mutex_lock(&c->mu);
        c->wanted = 1;
        uv_cond_signal(&c->cv);
        uv_mutex_unlock(&c->mu);
    }
    return SQLITE_OK;
}

static void checkpointer_run(void *data)
{
    struct kn_store_checkpointer *c = data;

    uv_mutex_lock(&c->mu);
    for (;;) {
        while (!c->wanted && !c->stop) {
            uv_cond_wait(&c->cv, &c->mu);
        }
        if (c->stop) {
            break;
        }
        c->wanted = 0;
        uv_mutex_unlock(&c->mu);
        /* PASSIVE never waits for the loop's connection; what it cannot copy yet, the next
         * checkpoint does. A failure (a full disk) leaves the WAL to grow: the loop's writes
         * report their own errors. */
        sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        uv_mutex_lock(&c->mu);
        c->done++;
    }
    uv_mutex_unlock(&c->mu);
}

/* Start the checkpointer of an open store; when it cannot start, SQLite's automatic checkpoints
 * stay (the store works as before). */
static void checkpointer_start(struct kn_store *st)
{
    struct kn_store_checkpointer *c = kn_calloc(1, sizeof(*c));
    sigset_t all, old;
    int started;

    if (sqlite3_open_v2(st->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(c->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_close(c->db);
        free(c);
        return;
    }
    uv_mutex_init(&c->mu);
    uv_cond_init(&c->cv);
    /* signals go to the loop's thread, never to this one */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    started = uv_thread_create(&c->thread, checkpointer_run, c) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!started) {
        uv_cond_destroy(&c->cv);
        uv_mutex_destroy(&c->mu);
        sqlite3_close(c->db);
        free(c);
        return;
    }
    st->checkpointer = c;
    sqlite3_wal_hook(st->db, checkpoint_wanted, c); /* replaces the automatic checkpoint */
}

long long kn_store_checkpoints(struct kn_store *st)
{
    long long n = 0;

    if (st->checkpointer) {
        uv_mutex_lock(&st->checkpointer->mu);
        n = st->checkpointer->done;
        uv_mutex_unlock(&st->checkpointer->mu);
    }
    return n;
}

static void checkpointer_stop(struct kn_store *st)
{
    struct kn_store_checkpointer *c = st->checkpointer;

    if (!c) {
        return;
    }
    sqlite3_wal_hook(st->db, NULL, NULL);
    uv_mutex_lock(&c->mu);
    c->stop = 1;
    uv_cond_signal(&c->cv);
    uv_mutex_unlock(&c->mu);
    uv_thread_join(&c->thread);
    sqlite3_close(c->db);
    uv_cond_destroy(&c->cv);
    uv_mutex_destroy(&c->mu);
    free(c);
    st->checkpointer = NULL;
}

int kn_store_open(struct kn_store **out, const char *path, struct kn_error *err)
{
    struct kn_store *st = NULL;
    struct stat sb;
    int version = 0;
    int src;
    int rc = 0;

    *out = NULL;
    if (!path || !*path) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "no database path");
        goto out;
    }
    if (stat(path, &sb) < 0 && errno == ENOENT && (rc = store_create(path, err)) < 0) {
        goto out;
    }
    /* Only store_create makes a new store: an empty file is one that lost its contents. */
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 0) {
        rc = kn_error_set(err, KN_EIO, NULL,
                          "'%s' is empty, not a kanaria database (move it away to start afresh; "
                          "nothing was changed)",
                          path);
        goto out;
    }
    st = kn_calloc(1, sizeof(*st));
    st->path = kn_strdup(path);
    src = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        rc = kn_error_set(err, src == SQLITE_NOMEM ? KN_ENOMEM : KN_EIO, NULL,
                          "cannot open '%s': %s", path,
                          st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(src));
        goto out;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, KN_STORE_OPEN_WAIT_MS);
    if ((rc = open_check(st, &version, err)) < 0) {
        goto out;
    }
    sqlite3_busy_timeout(st->db, KN_STORE_BUSY_MS);
    if ((rc = open_setup(st, err)) < 0) {
        goto out;
    }
    if ((rc = open_migrate(st, version, err)) < 0) {
        goto out;
    }
    checkpointer_start(st);
    *out = st;
    st = NULL;
out:
    kn_store_close(st);
    return rc;
}

const char *kn_store_storage_error(const struct kn_store *st, long long *write_errors)
{
    if (write_errors) {
        *write_errors = st->write_errors;
    }
    return st->storage_error;
}

void kn_store_close(struct kn_store *st)
{
    if (!st) {
        return;
    }
    checkpointer_stop(st); /* the loop's connection, the last, checkpoints as it closes */
    sqlite3_close_v2(st->db);
    free(st->path);
    free(st);
}

/* ---- events -------------------------------------------------------------------------------- */

static int event_insert(struct kn_store *st, const char *type, const char *repo, const char *app,
                        long long deployment, const char *actor, const char *message,
                        long long now_ms)
{
    st->events_written++;
    return run(st,
               "INSERT INTO events (at, type, repo, app, deployment, actor, message)"
               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
               "lssslss", now_ms, type, repo, app, deployment, actor, message);
}

int kn_store_event_add(struct kn_store *st, const char *type, const char *repo, const char *app,
                       long long deployment, const char *actor, const char *message,
                       long long now_ms)
{
    if (!st || !type || !*type) {
        return KN_EINVAL;
    }
    return event_insert(st, type, repo, app, deployment, actor, message, now_ms);
}

static void read_event(sqlite3_stmt *s, struct kn_event *e)
{
    memset(e, 0, sizeof(*e));
    e->id = sqlite3_column_int64(s, 0);
    e->at = sqlite3_column_int64(s, 1);
    col_copy(e->type, sizeof(e->type), s, 2);
    col_copy(e->repo, sizeof(e->repo), s, 3);
    col_copy(e->app, sizeof(e->app), s, 4);
    e->deployment = sqlite3_column_int64(s, 5);
    col_copy(e->actor, sizeof(e->actor), s, 6);
    e->message = col_text(s, 7);
}

int kn_store_events(struct kn_store *st, long long after_id, int limit, kn_store_event_cb cb,
                    void *data)
{
    return kn_store_events_find(st, after_id, limit, NULL, cb, data);
}

int kn_store_events_find(struct kn_store *st, long long after_id, int limit,
                         const struct kn_event_filter *f, kn_store_event_cb cb, void *data)
{
    static const struct kn_event_filter all = {0};
    sqlite3_stmt *s = NULL;
    struct kn_event *items = NULL;
    size_t n = 0;
    int rc;

    f = f ? f : &all;
    if (!st || !cb || limit < 0) {
        rc = KN_EINVAL;
        goto out;
    }
    rc = prepare(st, &s,
                 "SELECT id, at, type, repo, app, deployment, actor, message FROM events"
                 " WHERE id > ?1 AND (?3 = '' OR repo = ?3) AND (?4 = '' OR app = ?4)"
                 " AND (?5 = '' OR type = ?5) AND at >= ?6 ORDER BY id LIMIT ?2",
                 "lisssl", after_id, limit > 0 ? limit : -1, f->repo, f->app, f->type,
                 f->since_ms);
    while (rc == 0 && (rc = step(st, s)) == 1) {
        items = kn_reallocarray(items, n + 1, sizeof(*items));
        read_event(s, &items[n++]);
        rc = 0;
    }
    sqlite3_finalize(s);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = cb(&items[i], data);
    }
out:
    for (size_t i = 0; i < n; i++) {
        kn_event_release(&items[i]);
    }
    free(items);
    return rc;
}

/* ---- repositories -------------------------------------------------------------------------- */

int kn_store_repo_fetched(struct kn_store *st, const char *repo, const char *head, long long now_ms)
{
    if (!st || !repo || !head) {
        return KN_EINVAL;
    }
    return run(st,
               "INSERT INTO repositories (name, head, fetched_at, error, failing_since)"
               " VALUES (?1, ?2, ?3, '', 0)"
               " ON CONFLICT (name) DO UPDATE SET head = excluded.head,"
               " fetched_at = excluded.fetched_at, error = '', failing_since = 0",
               "ssl", repo, head, now_ms);
}

int kn_store_repo_failed(struct kn_store *st, const char *repo, const char *error, long long now_ms)
{
    if (!st || !repo) {
        return KN_EINVAL;
    }
    return run(st,
               "INSERT INTO repositories (name, head, fetched_at, error, failing_since)"
               " VALUES (?1, '', 0, ?2, ?3)"
               " ON CONFLICT (name) DO UPDATE SET error = excluded.error,"
               " failing_since = CASE WHEN failing_since = 0 THEN excluded.failing_since"
               " ELSE failing_since END",
               "ssl", repo, error && *error ? error : "fetch failed", now_ms);
}

int kn_store_repo_get(struct kn_store *st, const char *repo, struct kn_repo_state *out)
{
    sqlite3_stmt *s = NULL;
    int rc;

    if (!st || !repo || !out) {
        rc = KN_EINVAL;
        goto out;
    }
    rc = prepare(st, &s,
                 "SELECT name, head, fetched_at, error, failing_since FROM repositories"
                 " WHERE name = ?1",
                 "s", repo);
    if (rc < 0 || (rc = step(st, s)) < 0) {
        goto out;
    }
    if (rc == 0) {
        rc = KN_ENOTFOUND;
        goto out;
    }
    rc = 0;
    memset(out, 0, sizeof(*out));
    col_copy(out->name, sizeof(out->name), s, 0);
    col_copy(out->head, sizeof(out->head), s, 1);
    out->fetched_at = sqlite3_column_int64(s, 2);
    col_copy(out->error, sizeof(out->error), s, 3);
    out->failing_since = sqlite3_column_int64(s, 4);
out:
    sqlite3_finalize(s);
    return rc;
}

/* ---- apps ---------------------------------------------------------------------------------- */

#define KN_APP_COLS                                                                                \
    "repo, name, path, last_good, last_seen, current_deployment, error, rolled_back_from, drift,"  \
    " drift_since, self_heal, healed_at, orphaned_at, pruned_at"

static void read_app(sqlite3_stmt *s, struct kn_app_state *a)
{
    memset(a, 0, sizeof(*a));
    col_copy(a->repo, sizeof(a->repo), s, 0);
    col_copy(a->name, sizeof(a->name), s, 1);
    col_copy(a->path, sizeof(a->path), s, 2);
    col_copy(a->last_good, sizeof(a->last_good), s, 3);
    col_copy(a->last_seen, sizeof(a->last_seen), s, 4);
    a->current_deployment = sqlite3_column_int64(s, 5);
    a->error = col_text(s, 6);
    col_copy(a->rolled_back_from, sizeof(a->rolled_back_from), s, 7);
    col_copy(a->drift, sizeof(a->drift), s, 8);
    a->drift_since = sqlite3_column_int64(s, 9);
    a->self_heal = sqlite3_column_int(s, 10);
    a->healed_at = sqlite3_column_int64(s, 11);
    a->orphaned_at = sqlite3_column_int64(s, 12);
    a->pruned_at = sqlite3_column_int64(s, 13);
}

int kn_store_app_seen(struct kn_store *st, const char *repo, const char *app, const char *path,
                      const char *commit, const char *error)
{
    if (!st || !repo || !app) {
        return KN_EINVAL;
    }
    return run(st,
               "INSERT INTO apps (repo, name, path, last_seen, error) VALUES (?1, ?2, ?3, ?4, ?5)"
               /* an invalid folder (one that takes the name of a running app, say) does not
                * move the app away from the folder it runs from */
               " ON CONFLICT (repo, name) DO UPDATE SET path = CASE WHEN excluded.error = ''"
               " OR path = '' THEN excluded.path ELSE path END,"
               " last_seen = excluded.last_seen, error = excluded.error",
               "sssss", repo, app, path, commit, error);
}

int kn_store_apps_carry(struct kn_store *st, const char *repo, const char *from, const char *to,
                        const char *const *removed, size_t nremoved)
{
    json_t *paths = json_array();
    char *text;
    int rc;

    if (!st || !repo || !from || !to) {
        json_decref(paths);
        return KN_EINVAL;
    }
    for (size_t i = 0; i < nremoved; i++) {
        json_array_append_new(paths, json_string(removed[i]));
    }
    text = json_dumps(paths, JSON_COMPACT);
    json_decref(paths);
    rc = run(st,
             "UPDATE apps SET last_seen = ?3 WHERE repo = ?1 AND last_seen = ?2"
             " AND path NOT IN (SELECT value FROM json_each(?4))",
             "ssss", repo, from, to, text ? text : "[]");
    free(text);
    return rc;
}

int kn_store_app_drift(struct kn_store *st, const char *repo, const char *app, const char *drift,
                       long long now_ms)
{
    struct kn_app_state a = {0};
    int rc;

    if (!st || !repo || !app || !drift) {
        return KN_EINVAL;
    }
    if ((rc = tx_begin(st)) < 0) {
        goto out;
    }
    if ((rc = kn_store_app_get(st, repo, app, &a)) < 0 || strcmp(a.drift, drift) == 0) {
        goto out;
    }
    rc = run(st,
             "UPDATE apps SET drift = ?1, drift_since = CASE WHEN ?1 = '' THEN 0"
             " WHEN drift_since = 0 THEN ?2 ELSE drift_since END WHERE repo = ?3 AND name = ?4",
             "slss", drift, now_ms, repo, app);
    if (rc == 0 && *drift && !a.drift[0]) {
        rc = event_insert(st, "DRIFT_DETECTED", repo, app, 0, "kanaria", drift, now_ms);
    } else if (rc == 0 && !*drift) {
        rc = event_insert(st, "DRIFT_RESOLVED", repo, app, 0, "kanaria",
                          "live state matches the last good commit again", now_ms);
    }
out:
    kn_app_state_release(&a);
    return tx_end(st, rc);
}

int kn_store_app_set_self_heal(struct kn_store *st, const char *repo, const char *app, int on)
{
    if (!st || !repo || !app) {
        return KN_EINVAL;
    }
    return run(st, "UPDATE apps SET self_heal = ?1 WHERE repo = ?2 AND name = ?3", "iss", on,
               repo, app);
}

int kn_store_app_healed(struct kn_store *st, const char *repo, const char *app, long long now_ms)
{
    if (!st || !repo || !app) {
        return KN_EINVAL;
    }
    return run(st, "UPDATE apps SET healed_at = ?1 WHERE repo = ?2 AND name = ?3", "lss", now_ms,
               repo, app);
}

int kn_store_app_orphan(struct kn_store *st, const char *repo, const char *app, const char *message,
                        long long now_ms)
{
    struct kn_app_state a = {0};
    int marked = 0;
    int rc;

    if (!st || !repo || !app || !message) {
        return KN_EINVAL;
    }
    if ((rc = tx_begin(st)) < 0) {
        goto out;
    }
    if ((rc = kn_store_app_get(st, repo, app, &a)) < 0 || a.orphaned_at != 0) {
        goto out; /* said once */
    }
    rc = run(st, "UPDATE apps SET orphaned_at = ?1, pruned_at = 0 WHERE repo = ?2 AND name = ?3",
             "lss", now_ms, repo, app);
    if (rc == 0 &&
        (rc = event_insert(st, "APP_ORPHANED", repo, app, 0, "kanaria", message, now_ms)) == 0) {
        marked = 1;
    }
out:
    kn_app_state_release(&a);
    rc = tx_end(st, rc);
    return rc < 0 ? rc : marked;
}

int kn_store_app_restore(struct kn_store *st, const char *repo, const char *app, long long now_ms)
{
    struct kn_app_state a = {0};
    int marked = 0;
    int rc;

    if (!st || !repo || !app) {
        return KN_EINVAL;
    }
    if ((rc = tx_begin(st)) < 0) {
        goto out;
    }
    if ((rc = kn_store_app_get(st, repo, app, &a)) < 0 || a.orphaned_at == 0) {
        rc = rc == KN_ENOTFOUND ? 0 : rc;
        goto out;
    }
    rc = run(st, "UPDATE apps SET orphaned_at = 0, pruned_at = 0 WHERE repo = ?1 AND name = ?2",
             "ss", repo, app);
    if (rc == 0 &&
        (rc = event_insert(st, "APP_RESTORED", repo, app, 0, "kanaria",
                           a.pruned_at ? "the app is in the repository again (it was pruned: "
                                         "it is deployed afresh)"
                                       : "the app is in the repository again",
                           now_ms)) == 0) {
        marked = 1;
    }
out:
    kn_app_state_release(&a);
    rc = tx_end(st, rc);
    return rc < 0 ? rc : marked;
}

int kn_store_app_pruned(struct kn_store *st, const char *repo, const char *app, const char *actor,
                        const char *message, long long now_ms)
{
    struct kn_app_state a = {0};
    int rc;

    if (!st || !repo || !app || !actor || !message) {
        return KN_EINVAL;
    }
    if ((rc = tx_begin(st)) < 0) {
        goto out;
    }
    if ((rc = kn_store_app_get(st, repo, app, &a)) < 0) {
        goto out;
    }
    if (a.orphaned_at == 0) {
        rc = KN_EINVAL; /* it came back meanwhile: what runs is its again */
        goto out;
    }
    rc = run(st,
             "UPDATE apps SET pruned_at = ?1, drift = '', drift_since = 0"
             " WHERE repo = ?2 AND name = ?3",
             "lss", now_ms, repo, app);
    if (rc == 0) {
        rc = event_insert(st, "APP_PRUNED", repo, app, 0, actor, message, now_ms);
    }
out:
    kn_app_state_release(&a);
    return tx_end(st, rc);
}

int kn_store_app_get(struct kn_store *st, const char *repo, const char *app,
                     struct kn_app_state *out)
{
    sqlite3_stmt *s = NULL;
    int rc;

    if (!st || !repo || !app || !out) {
        rc = KN_EINVAL;
        goto out;
    }
    rc = prepare(st, &s, "SELECT " KN_APP_COLS " FROM apps WHERE repo = ?1 AND name = ?2", "ss",
                 repo, app);
    if (rc < 0 || (rc = step(st, s)) < 0) {
        goto out;
    }
    if (rc == 0) {
        rc = KN_ENOTFOUND;
        goto out;
    }
    rc = 0;
    read_app(s, out);
out:
    sqlite3_finalize(s);
    return rc;
}

int kn_store_apps(struct kn_store *st, const char *repo, kn_store_app_cb cb, void *data)
{
    sqlite3_stmt *s = NULL;
    struct kn_app_state *items = NULL;
    size_t n = 0;
    int rc;

    if (!st || !cb) {
        rc = KN_EINVAL;
        goto out;
    }
    rc = prepare(st, &s,
                 "SELECT " KN_APP_COLS " FROM apps WHERE ?1 IS NULL OR repo = ?1"
                 " ORDER BY repo, name",
                 "t", repo);
    while (rc == 0 && (rc = step(st, s)) == 1) {
        items = kn_reallocarray(items, n + 1, sizeof(*items));
        read_app(s, &items[n++]);
        rc = 0;
    }
    sqlite3_finalize(s);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = cb(&items[i], data);
    }
out:
    for (size_t i = 0; i < n; i++) {
        kn_app_state_release(&items[i]);
    }
    free(items);
    return rc;
}

/* The app's current deployment is the one running (or rolling back), else the newest that waits
 * to start, else none. Called inside the transaction of every status change. */
static int app_refresh_current(struct kn_store *st, const char *repo, const char *app)
{
    return run(st,
               "UPDATE apps SET current_deployment = COALESCE("
               " (SELECT id FROM deployments WHERE repo = ?1 AND app = ?2"
               "  AND status IN ('RUNNING', 'ROLLING_BACK') ORDER BY id LIMIT 1),"
               " (SELECT id FROM deployments WHERE repo = ?1 AND app = ?2"
               "  AND status IN " KN_STORE_NOT_STARTED " ORDER BY id DESC LIMIT 1),"
               " 0) WHERE repo = ?1 AND name = ?2",
               "ss", repo, app);
}

/* ---- deployments --------------------------------------------------------------------------- */

#define KN_DEPLOY_COLS                                                                             \
    "id, repo, app, commit_id, author, message, strategy, summary, status, reason, created_at,"    \
    " updated_at, started_at, finished_at, trigger, commit_time"

static int read_deployment(sqlite3_stmt *s, struct kn_deployment *d)
{
    const unsigned char *status = sqlite3_column_text(s, 8);
    int rc;

    memset(d, 0, sizeof(*d));
    d->id = sqlite3_column_int64(s, 0);
    col_copy(d->repo, sizeof(d->repo), s, 1);
    col_copy(d->app, sizeof(d->app), s, 2);
    col_copy(d->commit, sizeof(d->commit), s, 3);
    col_copy(d->author, sizeof(d->author), s, 4);
    d->message = col_text(s, 5);
    col_copy(d->strategy, sizeof(d->strategy), s, 6);
    col_copy(d->summary, sizeof(d->summary), s, 7);
    d->reason = col_text(s, 9);
    d->created_at = sqlite3_column_int64(s, 10);
    d->updated_at = sqlite3_column_int64(s, 11);
    d->started_at = sqlite3_column_int64(s, 12);
    d->finished_at = sqlite3_column_int64(s, 13);
    col_copy(d->trigger, sizeof(d->trigger), s, 14);
    d->commit_time = sqlite3_column_int64(s, 15);
    rc = kn_deploy_status_parse((const char *)status, &d->status);
    if (rc < 0) {
        kn_log_error("store", "deployment %lld has an unknown status '%s'", d->id,
                     status ? (const char *)status : "");
        kn_deployment_release(d);
        rc = KN_EIO;
    }
    return rc;
}

/* Read every row of s (finalized here), then call cb for each. */
static int deployments_each(struct kn_store *st, sqlite3_stmt *s, kn_store_deployment_cb cb,
                            void *data)
{
    struct kn_deployment *items = NULL;
    size_t n = 0;
    int rc = 0;

    while ((rc = step(st, s)) == 1) {
        items = kn_reallocarray(items, n + 1, sizeof(*items));
        if ((rc = read_deployment(s, &items[n++])) < 0) {
            break;
        }
    }
    sqlite3_finalize(s);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = cb(&items[i], data);
    }
    for (size_t i = 0; i < n; i++) {
        kn_deployment_release(&items[i]);
    }
    free(items);
    return rc;
}

int kn_store_deployment_baseline(struct kn_store *st, const char *repo, const char *app,
                                 char out[41])
{
    sqlite3_stmt *s = NULL;
    int rc;

    out[0] = '\0';
    if (!st || !repo || !app) {
        return KN_EINVAL;
    }
    rc = prepare(st, &s,
                 "SELECT commit_id FROM deployments WHERE repo = ?1 AND app = ?2"
                 " AND trigger = 'commit' ORDER BY id DESC LIMIT 1",
                 "ss", repo, app);
    if (rc == 0 && (rc = step(st, s)) == 1) {
        col_copy(out, 41, s, 0);
        rc = 0;
    }
    sqlite3_finalize(s);
    return rc;
}

int kn_store_deployment_add(struct kn_store *st, const struct kn_deployment_new *d,
                            long long now_ms, long long *id)
{
    char *reason = NULL;
    char *message = NULL;
    long long new_id = 0;
    int rc;

    if (!st || !d || !d->repo || !d->app || !d->commit || !*d->commit) {
        rc = KN_EINVAL;
        goto out;
    }
    if ((rc = tx_begin(st)) < 0) {
        goto out;
    }
    if (!d->trigger || strcmp(d->trigger, "commit") == 0) {
        /* a new commit is deployed once; asking for it again is another trigger */
        sqlite3_stmt *s = NULL;
        rc = prepare(st, &s,
                     "SELECT 1 FROM deployments WHERE repo = ?1 AND app = ?2 AND commit_id = ?3",
                     "sss", d->repo, d->app, d->commit);
        if (rc == 0 && (rc = step(st, s)) == 1) {
            rc = KN_EEXISTS;
        }
        sqlite3_finalize(s);
        if (rc < 0) {
            goto out;
        }
    }
    rc = run(st,
             "INSERT INTO deployments (repo, app, commit_id, author, message, strategy, summary,"
             " plan_json, status, created_at, updated_at, trigger, commit_time) VALUES (?1, ?2, ?3,"
             " ?4, ?5, ?6, ?7, ?8, 'PLANNED', ?9, ?9, ?10, ?11)",
             "ssssssstlsl", d->repo, d->app, d->commit, d->author, d->message, d->strategy,
             d->summary, d->plan_json, now_ms, d->trigger ? d->trigger : "commit",
             d->commit_time > 0 ? d->commit_time : 0LL);
    if (rc < 0) {
        goto out;
    }
    new_id = sqlite3_last_insert_rowid(st->db);

    /* Newest wins among the deployments that have not started. */
    reason = kn_asprintf("superseded by %.7s", d->commit);
    st->events_written++;
    rc = run(st,
             "INSERT INTO events (at, type, repo, app, deployment, actor, message)"
             " SELECT ?1, 'SUPERSEDED', repo, app, id, 'kanaria', ?2 FROM deployments"
             " WHERE repo = ?3 AND app = ?4 AND id != ?5 AND status IN " KN_STORE_NOT_STARTED
             " ORDER BY id",
             "lsssl", now_ms, reason, d->repo, d->app, new_id);
    if (rc < 0) {
        goto out;
    }
    rc = run(st,
             "UPDATE deployments SET status = 'SUPERSEDED', reason = ?1, updated_at = ?2,"
             " finished_at = ?2 WHERE repo = ?3 AND app = ?4 AND id != ?5"
             " AND status IN " KN_STORE_NOT_STARTED,
             "slssl", reason, now_ms, d->repo, d->app, new_id);
    if (rc < 0) {
        goto out;
    }

    /* The app normally exists (the planner saw it); make sure there is a row to point at us. */
    rc = run(st, "INSERT INTO apps (repo, name) VALUES (?1, ?2) ON CONFLICT DO NOTHING", "ss",
             d->repo, d->app);
    if (rc < 0 || (rc = app_refresh_current(st, d->repo, d->app)) < 0) {
        goto out;
    }
    message = kn_asprintf("%s at %.7s: %s", d->strategy && *d->strategy ? d->strategy : "plan",
                          d->commit, d->summary ? d->summary : "");
    rc = event_insert(st, "PLANNED", d->repo, d->app, new_id, "kanaria", message, now_ms);
out:
    if (st) {
        rc = tx_end(st, rc);
    }
    if (rc == 0 && id) {
        *id = new_id;
    }
    free(reason);
    free(message);
    return rc;
}

int kn_store_deployment_set_status(struct kn_store *st, long long id, enum kn_deploy_status status,
                                   const char *reason, long long now_ms)
{
    sqlite3_stmt *s = NULL;
    const char *name = kn_deploy_status_name(status);
    struct kn_deployment d = {0};
    int final = kn_deploy_status_is_final(status);
    int rc;

    if (!st || strcmp(name, "?") == 0) {
        return KN_EINVAL; /* before the transaction: nothing to undo */
    }
    if ((rc = tx_begin(st)) < 0) {
        goto out;
    }
    rc = prepare(st, &s, "SELECT " KN_DEPLOY_COLS " FROM deployments WHERE id = ?1", "l", id);
    if (rc < 0 || (rc = step(st, s)) < 0) {
        goto out;
    }
    if (rc == 0) {
        rc = KN_ENOTFOUND;
        goto out;
    }
    if ((rc = read_deployment(s, &d)) < 0) {
        goto out;
    }
    if (kn_deploy_status_is_final(d.status)) {
        rc = KN_EINVAL;
        kn_log_warn("store", "deployment %lld is %s already; not moving it to %s", id,
                    kn_deploy_status_name(d.status), name);
        goto out;
    }
    rc = run(st,
             "UPDATE deployments SET status = ?1, reason = ?2, updated_at = ?3,"
             " started_at = CASE WHEN ?1 = 'RUNNING' AND started_at = 0 THEN ?3"
             " ELSE started_at END,"
             " finished_at = CASE WHEN ?4 THEN ?3 ELSE finished_at END WHERE id = ?5",
             "sslil", name, reason, now_ms, final, id);
    if (rc < 0) {
        goto out;
    }
    if (status == KN_DEPLOY_SUCCESS) {
        rc = run(st,
                 "UPDATE apps SET last_good = ?1, rolled_back_from = '' WHERE repo = ?2"
                 " AND name = ?3",
                 "sss", d.commit, d.repo, d.app);
    } else if ((status == KN_DEPLOY_FAILURE || status == KN_DEPLOY_CANCELLED) &&
               d.status == KN_DEPLOY_ROLLING_BACK) {
        rc = run(st, "UPDATE apps SET rolled_back_from = ?1 WHERE repo = ?2 AND name = ?3", "sss",
                 d.commit, d.repo, d.app);
    }
    if (rc < 0 || (rc = app_refresh_current(st, d.repo, d.app)) < 0) {
        goto out;
    }
    rc = event_insert(st, name, d.repo, d.app, id, "kanaria", reason, now_ms);
out:
    kn_deployment_release(&d);
    sqlite3_finalize(s);
    return tx_end(st, rc);
}

int kn_store_deployment_set_reason(struct kn_store *st, long long id, const char *reason,
                                   long long now_ms)
{
    int rc;

    if (!st) {
        return KN_EINVAL;
    }
    rc = run(st,
             "UPDATE deployments SET reason = ?1, updated_at = ?2 WHERE id = ?3 AND status"
             " IN " KN_STORE_NOT_FINAL,
             "sll", reason ? reason : "", now_ms, id);
    if (rc == 0 && sqlite3_changes(st->db) == 0) {
        rc = KN_EINVAL; /* unknown or final */
    }
    return rc;
}

int kn_store_deployment_get(struct kn_store *st, long long id, struct kn_deployment *out)
{
    sqlite3_stmt *s = NULL;
    int rc;

    if (!st || !out) {
        rc = KN_EINVAL;
        goto out;
    }
    rc = prepare(st, &s, "SELECT " KN_DEPLOY_COLS " FROM deployments WHERE id = ?1", "l", id);
    if (rc < 0 || (rc = step(st, s)) < 0) {
        goto out;
    }
    if (rc == 0) {
        rc = KN_ENOTFOUND;
        goto out;
    }
    rc = read_deployment(s, out);
out:
    sqlite3_finalize(s);
    return rc;
}

char *kn_store_deployment_plan(struct kn_store *st, long long id)
{
    sqlite3_stmt *s = NULL;
    char *plan = NULL;

    if (!st) {
        goto out;
    }
    if (prepare(st, &s, "SELECT plan_json FROM deployments WHERE id = ?1", "l", id) < 0) {
        goto out;
    }
    if (step(st, s) == 1) {
        plan = col_dup(s, 0);
    }
out:
    sqlite3_finalize(s);
    return plan;
}

int kn_store_deployments(struct kn_store *st, const char *repo, const char *app, int limit,
                         kn_store_deployment_cb cb, void *data)
{
    sqlite3_stmt *s = NULL;
    int rc;

    if (!st || !repo || !app || !cb || limit < 0) {
        rc = KN_EINVAL;
        goto out;
    }
    rc = prepare(st, &s,
                 "SELECT " KN_DEPLOY_COLS " FROM deployments WHERE repo = ?1 AND app = ?2"
                 " ORDER BY id DESC LIMIT ?3",
                 "ssi", repo, app, limit > 0 ? limit : -1);
    if (rc == 0) {
        rc = deployments_each(st, s, cb, data);
    }
out:
    return rc;
}

int kn_store_deployments_open(struct kn_store *st, kn_store_deployment_cb cb, void *data)
{
    sqlite3_stmt *s = NULL;
    int rc;

    if (!st || !cb) {
        rc = KN_EINVAL;
        goto out;
    }
    rc = prepare(st, &s,
                 "SELECT " KN_DEPLOY_COLS " FROM deployments WHERE status IN " KN_STORE_NOT_FINAL
                 " ORDER BY id",
                 "");
    if (rc == 0) {
        rc = deployments_each(st, s, cb, data);
    }
out:
    return rc;
}

/* ---- stages -------------------------------------------------------------------------------- */

int kn_store_stage_set(struct kn_store *st, long long deployment, int index, const char *name,
                       const char *status, long long now_ms)
{
    if (!st || !status || index < 0) {
        return KN_EINVAL;
    }
    return run(st,
               "INSERT INTO stages (deployment, idx, name, status, started_at, finished_at)"
               " VALUES (?1, ?2, ?3, ?4,"
               " CASE WHEN ?4 = 'NOT_STARTED' THEN 0 ELSE ?5 END,"
               " CASE WHEN ?4 IN ('SUCCESS', 'FAILURE', 'CANCELLED', 'SKIPPED') THEN ?5 ELSE 0"
               " END)"
               " ON CONFLICT (deployment, idx) DO UPDATE SET"
               " name = CASE WHEN ?3 = '' THEN name ELSE ?3 END, status = ?4,"
               " started_at = CASE WHEN started_at = 0 AND ?4 != 'NOT_STARTED' THEN ?5"
               " ELSE started_at END,"
               " finished_at = CASE WHEN ?4 IN ('SUCCESS', 'FAILURE', 'CANCELLED', 'SKIPPED')"
               " THEN ?5 ELSE finished_at END",
               "lissl", deployment, index, name, status, now_ms);
}

int kn_store_stage_meta_set(struct kn_store *st, long long deployment, int index, const char *key,
                            const char *value)
{
    if (!st || !key || index < KN_STORE_DEPLOYMENT_META) {
        return KN_EINVAL;
    }
    return run(st,
               "INSERT INTO stage_meta (deployment, idx, key, value) VALUES (?1, ?2, ?3, ?4)"
               " ON CONFLICT (deployment, idx, key) DO UPDATE SET value = excluded.value",
               "liss", deployment, index, key, value);
}

char *kn_store_stage_meta_get(struct kn_store *st, long long deployment, int index, const char *key)
{
    sqlite3_stmt *s = NULL;
    char *value = NULL;

    if (!st || !key) {
        goto out;
    }
    if (prepare(st, &s,
                "SELECT value FROM stage_meta WHERE deployment = ?1 AND idx = ?2 AND key = ?3",
                "lis", deployment, index, key) < 0) {
        goto out;
    }
    if (step(st, s) == 1) {
        value = col_dup(s, 0);
    }
out:
    sqlite3_finalize(s);
    return value;
}

int kn_store_stage_get(struct kn_store *st, long long deployment, int index, char *status,
                       size_t size, long long *started_at)
{
    sqlite3_stmt *s = NULL;
    int rc;

    if (!st || !status || size == 0) {
        return KN_EINVAL;
    }
    status[0] = '\0';
    if ((rc = prepare(st, &s,
                      "SELECT status, started_at FROM stages WHERE deployment = ?1 AND idx = ?2",
                      "li", deployment, index)) < 0) {
        goto out;
    }
    rc = step(st, s);
    if (rc == 1) {
        snprintf(status, size, "%s", (const char *)sqlite3_column_text(s, 0));
        if (started_at) {
            *started_at = sqlite3_column_int64(s, 1);
        }
        rc = 0;
    } else if (rc == 0) {
        rc = KN_ENOTFOUND;
    }
out:
    sqlite3_finalize(s);
    return rc;
}

/* ---- approvals and analysis records -------------------------------------------------------- */

int kn_store_approval_add(struct kn_store *st, long long deployment, int stage, const char *who,
                          const char *decision, long long now_ms)
{
    if (!st || !who || !*who || !decision || !*decision) {
        return KN_EINVAL;
    }
    return run(st,
               "INSERT INTO approvals (deployment, stage, who, decision, at)"
               " VALUES (?1, ?2, ?3, ?4, ?5)",
               "lissl", deployment, stage, who, decision, now_ms);
}

struct approvals_of_stage {
    int stage;
    kn_store_approval_cb cb;
    void *data;
};

static int approval_of_stage(const struct kn_approval_record *a, void *data)
{
    const struct approvals_of_stage *x = data;

    return a->stage == x->stage ? x->cb(a->who, a->decision, x->data) : 0;
}

/* The records of one stage, read in full before the callbacks like every list here. */
int kn_store_approvals(struct kn_store *st, long long deployment, int stage,
                       kn_store_approval_cb cb, void *data)
{
    struct approvals_of_stage x = {.stage = stage, .cb = cb, .data = data};
    int rc;

    if (!st || !cb) {
        return KN_EINVAL;
    }
    rc = kn_store_approval_list(st, deployment, approval_of_stage, &x);
    return rc < 0 ? rc : 0;
}

int kn_store_analysis_add(struct kn_store *st, long long deployment, int stage, const char *check,
                          const char *query, const char *values_json, const char *bound,
                          const char *verdict, long long now_ms)
{
    if (!st || !check || !verdict) {
        return KN_EINVAL;
    }
    return run(st,
               "INSERT INTO analysis_records (deployment, stage, at, check_name, query,"
               " values_json, bound, verdict) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
               "lilsssss", deployment, stage, now_ms, check, query, values_json, bound, verdict);
}

/* ---- readers for the API ------------------------------------------------------------------- */

/* Rows are read in full before any callback runs, so that a callback may write to the store. */

int kn_store_stages(struct kn_store *st, long long deployment, kn_store_stage_cb cb, void *data)
{
    struct kn_stage_state *items = NULL;
    sqlite3_stmt *s = NULL;
    size_t n = 0;
    int rc;

    if (!st || !cb) {
        rc = KN_EINVAL;
        goto out;
    }
    rc = prepare(st, &s,
                 "SELECT idx, name, status, started_at, finished_at FROM stages"
                 " WHERE deployment = ?1 ORDER BY idx",
                 "l", deployment);
    while (rc == 0 && (rc = step(st, s)) == 1) {
        struct kn_stage_state *it;
        items = kn_reallocarray(items, n + 1, sizeof(*items));
        it = &items[n++];
        memset(it, 0, sizeof(*it));
        it->index = sqlite3_column_int(s, 0);
        col_copy(it->name, sizeof(it->name), s, 1);
        col_copy(it->status, sizeof(it->status), s, 2);
        it->started_at = sqlite3_column_int64(s, 3);
        it->finished_at = sqlite3_column_int64(s, 4);
        rc = 0;
    }
    sqlite3_finalize(s);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = cb(&items[i], data);
    }
out:
    free(items);
    return rc;
}

int kn_store_deployment_events(struct kn_store *st, long long deployment, int limit,
                               kn_store_event_cb cb, void *data)
{
    struct kn_event *items = NULL;
    sqlite3_stmt *s = NULL;
    size_t n = 0;
    int rc;

    if (!st || !cb || limit < 0) {
        rc = KN_EINVAL;
        goto out;
    }
    /* the newest `limit`, handed over oldest first */
    rc = prepare(st, &s,
                 "SELECT * FROM (SELECT id, at, type, repo, app, deployment, actor, message"
                 " FROM events WHERE deployment = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
                 "li", deployment, limit > 0 ? limit : -1);
    while (rc == 0 && (rc = step(st, s)) == 1) {
        items = kn_reallocarray(items, n + 1, sizeof(*items));
        read_event(s, &items[n++]);
        rc = 0;
    }
    sqlite3_finalize(s);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = cb(&items[i], data);
    }
out:
    for (size_t i = 0; i < n; i++) {
        kn_event_release(&items[i]);
    }
    free(items);
    return rc;
}

int kn_store_approval_list(struct kn_store *st, long long deployment,
                           kn_store_approval_record_cb cb, void *data)
{
    struct kn_approval_record *items = NULL;
    sqlite3_stmt *s = NULL;
    size_t n = 0;
    int rc;

    if (!st || !cb) {
        rc = KN_EINVAL;
        goto out;
    }
    rc = prepare(st, &s,
                 "SELECT stage, who, decision, at FROM approvals WHERE deployment = ?1"
                 " ORDER BY rowid",
                 "l", deployment);
    while (rc == 0 && (rc = step(st, s)) == 1) {
        struct kn_approval_record *it;
        items = kn_reallocarray(items, n + 1, sizeof(*items));
        it = &items[n++];
        memset(it, 0, sizeof(*it));
        it->stage = sqlite3_column_int(s, 0);
        col_copy(it->who, sizeof(it->who), s, 1);
        col_copy(it->decision, sizeof(it->decision), s, 2);
        it->at = sqlite3_column_int64(s, 3);
        rc = 0;
    }
    sqlite3_finalize(s);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = cb(&items[i], data);
    }
out:
    free(items);
    return rc;
}

int kn_store_analysis_list(struct kn_store *st, long long deployment, kn_store_analysis_cb cb,
                           void *data)
{
    struct kn_analysis_record *items = NULL;
    sqlite3_stmt *s = NULL;
    size_t n = 0;
    int rc;

    if (!st || !cb) {
        rc = KN_EINVAL;
        goto out;
    }
    rc = prepare(st, &s,
                 "SELECT id, stage, at, check_name, query, values_json, bound, verdict"
                 " FROM analysis_records WHERE deployment = ?1 ORDER BY id",
                 "l", deployment);
    while (rc == 0 && (rc = step(st, s)) == 1) {
        struct kn_analysis_record *it;
        items = kn_reallocarray(items, n + 1, sizeof(*items));
        it = &items[n++];
        memset(it, 0, sizeof(*it));
        it->id = sqlite3_column_int64(s, 0);
        it->stage = sqlite3_column_int(s, 1);
        it->at = sqlite3_column_int64(s, 2);
        col_copy(it->check, sizeof(it->check), s, 3);
        it->query = col_text(s, 4);
        it->values_json = col_text(s, 5);
        col_copy(it->bound, sizeof(it->bound), s, 6);
        col_copy(it->verdict, sizeof(it->verdict), s, 7);
        rc = 0;
    }
    sqlite3_finalize(s);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = cb(&items[i], data);
    }
out:
    for (size_t i = 0; i < n; i++) {
        kn_analysis_record_release(&items[i]);
    }
    free(items);
    return rc;
}

/* ---- readers for /metrics and the event feed ----------------------------------------------- */

long long kn_store_events_written(const struct kn_store *st)
{
    sqlite3_stmt *s = NULL;
    long long other = 0;

    if (!st) {
        return 0;
    }
    /* commits of other connections (sqlite3 by hand, a tool) change data_version; reading it
     * touches no table */
    if (sqlite3_prepare_v2(st->db, "PRAGMA data_version", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
        other = sqlite3_column_int64(s, 0);
    }
    sqlite3_finalize(s);
    return st->events_written + other;
}

int kn_store_event_last_id(struct kn_store *st, long long *out)
{
    sqlite3_stmt *s = NULL;
    int rc;

    *out = 0;
    if (!st) {
        return KN_EINVAL;
    }
    rc = prepare(st, &s, "SELECT coalesce(max(id), 0) FROM events", "");
    if (rc == 0 && (rc = step(st, s)) == 1) {
        *out = sqlite3_column_int64(s, 0);
        rc = 0;
    }
    sqlite3_finalize(s);
    return rc;
}

/* Read every row of s as a tally (columns: repo, app, name, verdict, count, sum), then call cb
 * for each once the statement is done, so that cb may use the store. */
static int tally_each(struct kn_store *st, sqlite3_stmt *s, kn_store_tally_cb cb, void *data)
{
    struct kn_store_tally *items = NULL;
    size_t n = 0;
    int rc;

    while ((rc = step(st, s)) == 1) {
        struct kn_store_tally *t;
        items = kn_reallocarray(items, n + 1, sizeof(*items));
        t = &items[n++];
        memset(t, 0, sizeof(*t));
        col_copy(t->repo, sizeof(t->repo), s, 0);
        col_copy(t->app, sizeof(t->app), s, 1);
        col_copy(t->name, sizeof(t->name), s, 2);
        col_copy(t->verdict, sizeof(t->verdict), s, 3);
        t->count = sqlite3_column_int64(s, 4);
        t->sum_seconds = sqlite3_column_double(s, 5);
    }
    sqlite3_finalize(s);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = cb(&items[i], data);
    }
    free(items);
    return rc;
}

/* Run one tally query (no parameters) and call cb for each row. */
static int tally(struct kn_store *st, const char *sql, kn_store_tally_cb cb, void *data)
{
    sqlite3_stmt *s = NULL;
    int rc;

    if (!st || !cb) {
        return KN_EINVAL;
    }
    rc = prepare(st, &s, sql, "");
    return rc < 0 ? rc : tally_each(st, s, cb, data);
}

int kn_store_tally_deployments(struct kn_store *st, kn_store_tally_cb cb, void *data)
{
    return tally(st,
                 "SELECT '', app, status, '', count(*), 0 FROM deployments"
                 " GROUP BY app, status ORDER BY app, status",
                 cb, data);
}

int kn_store_tally_stages(struct kn_store *st, kn_store_tally_cb cb, void *data)
{
    return tally(st,
                 "SELECT '', d.app, s.name, '', count(*),"
                 " sum(s.finished_at - s.started_at) / 1000.0"
                 " FROM stages s JOIN deployments d ON d.id = s.deployment"
                 " WHERE s.started_at > 0 AND s.finished_at >= s.started_at"
                 " GROUP BY d.app, s.name ORDER BY d.app, s.name",
                 cb, data);
}

int kn_store_tally_analysis(struct kn_store *st, kn_store_tally_cb cb, void *data)
{
    return tally(st,
                 "SELECT '', d.app, a.check_name, a.verdict, count(*), 0"
                 " FROM analysis_records a JOIN deployments d ON d.id = a.deployment"
                 " GROUP BY d.app, a.check_name, a.verdict"
                 " ORDER BY d.app, a.check_name, a.verdict",
                 cb, data);
}

int kn_store_outcomes(struct kn_store *st, kn_store_deployment_cb cb, void *data)
{
    sqlite3_stmt *s = NULL;
    int rc;

    if (!st || !cb) {
        return KN_EINVAL;
    }
    rc = prepare(st, &s,
                 "SELECT " KN_DEPLOY_COLS " FROM deployments"
                 " WHERE status IN ('SUCCESS', 'FAILURE') AND finished_at > 0"
                 " ORDER BY app, finished_at, id",
                 "");
    return rc < 0 ? rc : deployments_each(st, s, cb, data);
}

int kn_store_failure_times(struct kn_store *st, kn_store_failure_times_cb cb, void *data)
{
    struct kn_store_failure_times *items = NULL;
    sqlite3_stmt *s = NULL;
    size_t n = 0;
    int rc;

    if (!st || !cb) {
        return KN_EINVAL;
    }
    rc = prepare(st, &s,
                 "SELECT d.id,"
                 " COALESCE((SELECT min(a.at) FROM analysis_records a WHERE a.deployment = d.id"
                 "  AND a.verdict = 'FAIL'), 0),"
                 " COALESCE((SELECT max(r.started_at) FROM stages r WHERE r.deployment = d.id"
                 "  AND r.name = 'ROLLBACK'), 0),"
                 " COALESCE((SELECT max(r.finished_at) FROM stages r WHERE r.deployment = d.id"
                 "  AND r.name = 'ROLLBACK'), 0)"
                 " FROM deployments d WHERE d.status = 'FAILURE' ORDER BY d.id",
                 "");
    while (rc == 0 && (rc = step(st, s)) == 1) {
        items = kn_reallocarray(items, n + 1, sizeof(*items));
        items[n].deployment = sqlite3_column_int64(s, 0);
        items[n].first_fail_at = sqlite3_column_int64(s, 1);
        items[n].rollback_started_at = sqlite3_column_int64(s, 2);
        items[n++].rollback_finished_at = sqlite3_column_int64(s, 3);
        rc = 0;
    }
    sqlite3_finalize(s);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = cb(&items[i], data);
    }
    free(items);
    return rc;
}

/* ---- platform memos ------------------------------------------------------------------------ */

int kn_store_memo_get(struct kn_store *st, const char *platform, const char *repo,
                      const char *app, const char *key, char **out)
{
    sqlite3_stmt *s = NULL;
    int rc;

    *out = NULL;
    if (!st || !platform || !repo || !app || !key) {
        return KN_EINVAL;
    }
    if ((rc = prepare(st, &s,
                      "SELECT value FROM platform_memos WHERE platform = ?1 AND repo = ?2 AND "
                      "app = ?3 AND key = ?4",
                      "ssss", platform, repo, app, key)) < 0) {
        goto out;
    }
    if ((rc = step(st, s)) == 1) {
        *out = col_dup(s, 0);
        rc = 0;
    } else if (rc == 0) {
        rc = KN_ENOTFOUND;
    }
out:
    sqlite3_finalize(s);
    return rc;
}

int kn_store_memo_set(struct kn_store *st, const char *platform, const char *repo,
                      const char *app, const char *key, const char *value)
{
    if (!st || !platform || !repo || !app || !key) {
        return KN_EINVAL;
    }
    if (!value) {
        return run(st,
                   "DELETE FROM platform_memos WHERE platform = ?1 AND repo = ?2 AND app = ?3 "
                   "AND key = ?4",
                   "ssss", platform, repo, app, key);
    }
    return run(st,
               "INSERT INTO platform_memos (platform, repo, app, key, value) "
               "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (platform, repo, app, key) "
               "DO UPDATE SET value = excluded.value",
               "sssss", platform, repo, app, key, value);
}

/* ---- notification state -------------------------------------------------------------------- */

int kn_store_notify_get(struct kn_store *st, const char *name, const char *key, char **out)
{
    sqlite3_stmt *s = NULL;
    int rc;

    *out = NULL;
    if (!st || !name || !key) {
        return KN_EINVAL;
    }
    if ((rc = prepare(st, &s, "SELECT value FROM notification_state WHERE name = ?1 AND key = ?2",
                      "ss", name, key)) < 0) {
        goto out;
    }
    if ((rc = step(st, s)) == 1) {
        *out = col_dup(s, 0);
        rc = 0;
    } else if (rc == 0) {
        rc = KN_ENOTFOUND;
    }
out:
    sqlite3_finalize(s);
    return rc;
}

int kn_store_notify_set(struct kn_store *st, const char *name, const char *key, const char *value)
{
    if (!st || !name || !key) {
        return KN_EINVAL;
    }
    if (!value) {
        return run(st, "DELETE FROM notification_state WHERE name = ?1 AND key = ?2", "ss", name,
                   key);
    }
    return run(st,
               "INSERT INTO notification_state (name, key, value) VALUES (?1, ?2, ?3) "
               "ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
               "sss", name, key, value);
}
