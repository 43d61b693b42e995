/* Unit tests for controller/store.c: open and refusal, migrations, status changes, lists. */
#include "testutil.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kanaria/alloc.h"
#include "kanaria/store.h"

/* 2026-11-25T19:40:01.123Z */
#define T_NOW_MS 1795635601123LL

#define C1 "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define C2 "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define C3 "3333333ccccccccccccccccccccccccccccccccc"

struct fixture {
    char *dir;
    char *path;
    struct kn_store *st;
};

static int setup(void **state)
{
    struct fixture *f = kn_calloc(1, sizeof(*f));
    struct kn_error err;

    f->dir = kn_test_tmpdir();
    f->path = kn_asprintf("%s/kanaria.db", f->dir);
    kn_error_clear(&err);
    if (kn_store_open(&f->st, f->path, &err) != 0) {
        fail_msg("open: %s", err.msg);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char *fs = kn_asprintf("%s/fs", f->dir);

    kn_store_close(f->st);
    umount2(fs, MNT_DETACH); /* test_disk_full's, when it failed half-way */
    free(fs);
    kn_test_rmtree(f->dir);
    free(f->dir);
    free(f->path);
    free(f);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *data;
    long n;

    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    n = ftell(fp);
    assert_true(n >= 0);
    rewind(fp);
    data = kn_malloc((size_t)n + 1);
    assert_int_equal(fread(data, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return data;
}

static void assert_same_bytes(const char *path, const char *before, size_t before_len)
{
    size_t len;
    char *now = slurp(path, &len);

    assert_int_equal(len, before_len);
    assert_memory_equal(now, before, len);
    free(now);
}

/* Run sql on a separate connection. */
static void sql_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    }
    sqlite3_close(db);
}

/* The first column of the first row of sql, on a separate connection. */
static long long sql_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    long long v;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    }
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static struct kn_deployment_new new_deploy(const char *app, const char *commit)
{
    struct kn_deployment_new d = {
        .repo = "demo",
        .app = app,
        .commit = commit,
        .author = "Ada <ada@example.com>",
        .message = "bump the greeting",
        .strategy = "PIPELINE",
        .summary = "image changes from v1 to v2",
        .plan_json = NULL,
    };
    return d;
}

static long long add(struct kn_store *st, const char *app, const char *commit, long long now)
{
    struct kn_deployment_new d = new_deploy(app, commit);
    long long id = 0;

    assert_int_equal(kn_store_deployment_add(st, &d, now, &id), 0);
    assert_true(id > 0);
    return id;
}

static enum kn_deploy_status status_of(struct kn_store *st, long long id)
{
    struct kn_deployment d = {0};

    assert_int_equal(kn_store_deployment_get(st, id, &d), 0);
    kn_deployment_release(&d); /* the status is not one of the texts it frees */
    return d.status;
}

static long long current_of(struct kn_store *st, const char *app)
{
    struct kn_app_state a = {0};

    assert_int_equal(kn_store_app_get(st, "demo", app, &a), 0);
    kn_app_state_release(&a); /* the deployment id is not one of the texts it frees */
    return a.current_deployment;
}

#define MAX_SEEN 32

struct seen_events {
    struct kn_event e[MAX_SEEN];
    char text[MAX_SEEN][4096]; /* the messages: e[i].message points here */
    int n;
};

static int collect_event(const struct kn_event *e, void *data)
{
    struct seen_events *s = data;

    assert_true(s->n < MAX_SEEN);
    s->e[s->n] = *e;
    snprintf(s->text[s->n], sizeof(s->text[s->n]), "%s", e->message);
    s->e[s->n].message = s->text[s->n];
    s->n++;
    return 0;
}

static void events_all(struct kn_store *st, struct seen_events *s)
{
    memset(s, 0, sizeof(*s));
    assert_int_equal(kn_store_events(st, 0, 0, collect_event, s), 0);
}

struct seen_deployments {
    long long id[MAX_SEEN];
    enum kn_deploy_status status[MAX_SEEN];
    int n;
    int stop_after; /* 0: never */
};

static int collect_deployment(const struct kn_deployment *d, void *data)
{
    struct seen_deployments *s = data;

    assert_true(s->n < MAX_SEEN);
    s->id[s->n] = d->id;
    s->status[s->n] = d->status;
    s->n++;
    return s->stop_after && s->n >= s->stop_after ? 7 : 0;
}

/* ---- open, migrations, refusal ------------------------------------------------------------- */

static void test_status_names(void **state)
{
    enum kn_deploy_status s;

    (void)state;
    for (int i = KN_DEPLOY_PENDING; i <= KN_DEPLOY_SUPERSEDED; i++) {
        assert_int_equal(kn_deploy_status_parse(kn_deploy_status_name(i), &s), 0);
        assert_int_equal(s, i);
    }
    assert_string_equal(kn_deploy_status_name(KN_DEPLOY_ROLLING_BACK), "ROLLING_BACK");
    assert_int_equal(kn_deploy_status_parse("running", &s), KN_EINVAL);
    assert_int_equal(kn_deploy_status_parse(NULL, &s), KN_EINVAL);
    assert_false(kn_deploy_status_is_final(KN_DEPLOY_PLANNED));
    assert_false(kn_deploy_status_is_final(KN_DEPLOY_ROLLING_BACK));
    assert_true(kn_deploy_status_is_final(KN_DEPLOY_SUCCESS));
    assert_true(kn_deploy_status_is_final(KN_DEPLOY_SUPERSEDED));
}

static void test_create_reopen(void **state)
{
    struct fixture *f = *state;
    struct kn_repo_state r;
    struct kn_error err;

    assert_int_equal(sql_int(f->path, "PRAGMA user_version"), kn_store_schema_version());
    assert_int_equal(kn_store_repo_fetched(f->st, "demo", C1, T_NOW_MS), 0);
    kn_store_close(f->st);
    f->st = NULL;

    kn_error_clear(&err);
    assert_int_equal(kn_store_open(&f->st, f->path, &err), 0);
    assert_int_equal(kn_store_repo_get(f->st, "demo", &r), 0);
    assert_string_equal(r.head, C1);
    assert_int_equal(r.fetched_at, T_NOW_MS);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM pragma_journal_mode"
                                      " WHERE journal_mode = 'wal'"),
                     1);
}

/* A WAL grown by over 1,000 pages is checkpointed into the database file while the store stays
 * open, by the store's thread: the writes on the loop do not do it themselves. (How far the WAL
 * grows while writes go on depends on how soon that thread is scheduled: the bench measures it.) */
static void test_wal_checkpointed_off_the_loop(void **state)
{
    struct fixture *f = *state;
    char *message = kn_calloc(1, 4001);
    struct stat sb;
    off_t before;
    int i;

    memset(message, 'x', 4000);
    assert_int_equal(stat(f->path, &sb), 0);
    before = sb.st_size;
    assert_int_equal(kn_store_checkpoints(f->st), 0);
    for (i = 0; i < 1500; i++) {
        assert_int_equal(kn_store_event_add(f->st, "TEST", "demo", "web", 0, "test", message,
                                            T_NOW_MS + i),
                         0);
    }
    /* a bound on the wait, not a speed: the checkpoint runs on another thread */
    for (i = 0; i < 2000 && kn_store_checkpoints(f->st) == 0; i++) {
        nanosleep(&(struct timespec){.tv_nsec = 5000000}, NULL);
    }
    assert_true(kn_store_checkpoints(f->st) > 0);
    assert_int_equal(stat(f->path, &sb), 0);
    assert_true(sb.st_size > before + 1000 * 4096);
    free(message);
}

static void test_migrations_from_zero(void **state)
{
    static const char *const tables[] = {
        "repositories", "apps",   "deployments", "stages",
        "stage_meta",   "events", "approvals",   "analysis_records",
    };
    char *dir = kn_test_tmpdir();
    char *path = kn_asprintf("%s/empty.db", dir);
    struct kn_store *st = NULL;
    struct kn_error err;
    char sql[128];

    (void)state;
    /* No file: a new store. */
    kn_error_clear(&err);
    assert_int_equal(kn_store_open(&st, path, &err), 0);
    assert_int_equal(sql_int(path, "PRAGMA user_version"), kn_store_schema_version());
    assert_true(kn_store_schema_version() >= 1);
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM sqlite_master WHERE name = '%s'",
                 tables[i]);
        assert_int_equal(sql_int(path, sql), 1);
    }
    assert_true(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'index'") >= 5);
    kn_store_close(st);

    /* Reopening at the current version migrates nothing and keeps going. */
    assert_int_equal(kn_store_open(&st, path, &err), 0);
    assert_int_equal(sql_int(path, "PRAGMA user_version"), kn_store_schema_version());
    kn_store_close(st);

    kn_test_rmtree(dir);
    free(path);
    free(dir);
}

static void test_newer_schema_refused(void **state)
{
    struct fixture *f = *state;
    struct kn_store *st = NULL;
    struct kn_error err;
    char sql[64];
    char want[64];
    char *before;
    size_t len;

    kn_store_close(f->st);
    f->st = NULL;
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", kn_store_schema_version() + 1);
    sql_exec(f->path, sql);
    before = slurp(f->path, &len);

    kn_error_clear(&err);
    assert_int_equal(kn_store_open(&st, f->path, &err), KN_EUNSUPPORTED);
    assert_null(st);
    assert_int_equal(err.code, KN_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "was written by a newer kanaria"));
    snprintf(want, sizeof(want), "(schema %d, this one knows %d)", kn_store_schema_version() + 1,
             kn_store_schema_version());
    assert_non_null(strstr(err.msg, want));
    assert_non_null(strstr(err.msg, f->path));
    assert_same_bytes(f->path, before, len);
    free(before);
}

static void test_corrupt_refused(void **state)
{
    struct fixture *f = *state;
    struct kn_store *st = NULL;
    struct kn_error err;
    char *garbage_path = kn_asprintf("%s/garbage.db", f->dir);
    char *foreign_path = kn_asprintf("%s/foreign.db", f->dir);
    unsigned char bytes[8192];
    unsigned seed = 12345;
    char *before;
    size_t len;
    FILE *fp;

    /* Random bytes. */
    for (size_t i = 0; i < sizeof(bytes); i++) {
        seed = seed * 1103515245u + 12345u;
        bytes[i] = (unsigned char)(seed >> 16);
    }
    fp = fopen(garbage_path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(bytes, 1, sizeof(bytes), fp), sizeof(bytes));
    fclose(fp);
    kn_error_clear(&err);
    assert_int_equal(kn_store_open(&st, garbage_path, &err), KN_EIO);
    assert_null(st);
    assert_non_null(strstr(err.msg, "is not a kanaria database or is corrupt"));
    assert_non_null(strstr(err.msg, "nothing was changed"));
    assert_same_bytes(garbage_path, (const char *)bytes, sizeof(bytes));

    /* A real kanaria database with a b-tree page overwritten. */
    assert_int_equal(kn_store_repo_fetched(f->st, "demo", C1, T_NOW_MS), 0);
    kn_store_close(f->st);
    f->st = NULL;
    before = slurp(f->path, &len);
    assert_true(len >= 3 * 4096);
    memset(before + 4096, 0x5a, 4096);
    fp = fopen(f->path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(before, 1, len, fp), len);
    fclose(fp);
    kn_error_clear(&err);
    assert_int_equal(kn_store_open(&st, f->path, &err), KN_EIO);
    assert_null(st);
    assert_non_null(strstr(err.msg, "is not a kanaria database or is corrupt"));
    assert_same_bytes(f->path, before, len);
    free(before);

    /* Some other program's database. */
    sql_exec(foreign_path, "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hi')");
    before = slurp(foreign_path, &len);
    kn_error_clear(&err);
    assert_int_equal(kn_store_open(&st, foreign_path, &err), KN_EIO);
    assert_null(st);
    assert_non_null(strstr(err.msg, "is not a kanaria database"));
    assert_same_bytes(foreign_path, before, len);
    free(before);

    free(garbage_path);
    free(foreign_path);
}

static void test_locked_refused(void **state)
{
    struct fixture *f = *state;
    struct kn_store *st = NULL;
    struct kn_error err;
    sqlite3 *other = NULL;

    kn_store_close(f->st);
    f->st = NULL;
    assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);

    kn_error_clear(&err);
    assert_int_equal(kn_store_open(&st, f->path, &err), KN_EIO);
    assert_null(st);
    assert_non_null(strstr(err.msg, "is locked by another process"));

    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(kn_store_open(&f->st, f->path, &err), 0);
    sqlite3_close(other);
}

/* An empty kanaria.db lost its contents: it is not a new store (history would be lost and every
 * app deployed again as a first deployment). */
static void test_empty_refused(void **state)
{
    struct fixture *f = *state;
    struct kn_store *st = NULL;
    struct kn_error err;
    char *wal = kn_asprintf("%s-wal", f->path);
    struct stat sb;

    kn_store_close(f->st);
    f->st = NULL;
    unlink(f->path);
    unlink(wal);
    kn_test_write(f->dir, "kanaria.db", "");

    kn_error_clear(&err);
    assert_int_equal(kn_store_open(&st, f->path, &err), KN_EIO);
    assert_null(st);
    assert_non_null(strstr(err.msg, "is empty, not a kanaria database"));
    assert_non_null(strstr(err.msg, "nothing was changed"));
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_size, 0);
    assert_int_not_equal(stat(wal, &sb), 0);
    free(wal);
}

/* A store without a table (or a column) its schema version has is refused at open, unchanged. */
static void test_missing_table_refused(void **state)
{
    struct fixture *f = *state;
    struct kn_store *st = NULL;
    struct kn_error err;
    char *before;
    size_t len;

    kn_store_close(f->st);
    f->st = NULL;
    sql_exec(f->path, "DROP TABLE approvals");
    before = slurp(f->path, &len);
    kn_error_clear(&err);
    assert_int_equal(kn_store_open(&st, f->path, &err), KN_EIO);
    assert_null(st);
    assert_non_null(strstr(err.msg, "is not a kanaria database or is corrupt"));
    assert_non_null(strstr(err.msg, "has a table 'approvals' but the file has not"));
    assert_same_bytes(f->path, before, len);
    free(before);

    sql_exec(f->path, "CREATE TABLE approvals (deployment INTEGER NOT NULL REFERENCES"
                      " deployments (id) ON DELETE CASCADE, stage INTEGER NOT NULL,"
                      " who TEXT NOT NULL, decision TEXT NOT NULL, at INTEGER NOT NULL);"
                      "ALTER TABLE apps DROP COLUMN healed_at");
    kn_error_clear(&err);
    assert_int_equal(kn_store_open(&st, f->path, &err), KN_EIO);
    assert_non_null(strstr(err.msg, "has a table 'apps' with a column 'healed_at' but the file"));
}

/* A creation killed half-way leaves kanaria.db.new, never kanaria.db: the next start creates the
 * store again. A WAL left without its database is not replayed into a new one. */
static void test_create_killed_halfway(void **state)
{
    struct fixture *f = *state;
    struct kn_store *st = NULL;
    struct kn_error err;
    char *tmp = kn_asprintf("%s.new", f->path);
    char *wal = kn_asprintf("%s-wal", f->path);
    struct stat sb;

    kn_store_close(f->st);
    f->st = NULL;
    unlink(f->path);
    unlink(wal);
    kn_test_write(f->dir, "kanaria.db.new", "");
    kn_error_clear(&err);
    assert_int_equal(kn_store_open(&f->st, f->path, &err), 0);
    assert_int_not_equal(stat(tmp, &sb), 0);
    assert_int_equal(sql_int(f->path, "PRAGMA user_version"), kn_store_schema_version());
    kn_store_close(f->st);
    f->st = NULL;

    unlink(f->path);
    kn_test_write(f->dir, "kanaria.db-wal", "not empty");
    kn_error_clear(&err);
    assert_int_equal(kn_store_open(&st, f->path, &err), KN_EIO);
    assert_null(st);
    assert_non_null(strstr(err.msg, "is there without its database"));
    assert_int_not_equal(stat(f->path, &sb), 0);
    unlink(wal);
    free(tmp);
    free(wal);
}

/* A lock on the database that its holder lets go of soon (a process exiting after kill -9, a
 * reader closing) is waited for: kanaria.lock already says no other kanaria serves the store. */
static void test_lock_released_waited(void **state)
{
    struct fixture *f = *state;
    struct kn_error err;
    int ready[2];
    int status = 0;
    char c;
    pid_t pid;

    kn_store_close(f->st);
    f->st = NULL;
    assert_int_equal(pipe(ready), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sqlite3 *db = NULL;

        if (sqlite3_open(f->path, &db) != SQLITE_OK ||
            sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL) != SQLITE_OK ||
            write(ready[1], "x", 1) != 1) {
            _exit(1);
        }
        nanosleep(&(struct timespec){.tv_nsec = 500 * 1000 * 1000}, NULL);
        _exit(0); /* the lock goes with the process, as after kill -9 */
    }
    close(ready[1]);
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);

    kn_error_clear(&err);
    if (kn_store_open(&f->st, f->path, &err) != 0) {
        fail_msg("open: %s", err.msg);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A full disk under the store: the write fails, the storage error says so until a write works
 * again, which it does once there is space. A real full filesystem: a small tmpfs (root only). */
static void test_disk_full(void **state)
{
    struct fixture *f = *state;
    char *fs = kn_asprintf("%s/fs", f->dir);
    char *path = kn_asprintf("%s/kanaria.db", fs);
    char *filler = kn_asprintf("%s/filler", fs);
    char *message = kn_calloc(1, 16 * 1024 + 1);
    struct kn_store *st = NULL;
    struct kn_error err;
    long long errors = 0;
    char chunk[16 * 1024];
    FILE *fp;
    int rc = 0;

    assert_int_equal(mkdir(fs, 0755), 0);
    if (geteuid() != 0 || mount("tmpfs", fs, "tmpfs", 0, "size=1m") != 0) {
        const char *ci = getenv("CI");
        if (ci && strcmp(ci, "true") == 0) {
            fail_msg("test_disk_full: CI runs as root and must mount a small tmpfs");
        }
        fprintf(stderr, "SKIPPED: test_disk_full needs root to mount a small tmpfs\n");
        free(fs);
        free(path);
        free(filler);
        free(message);
        skip();
    }
    kn_error_clear(&err);
    if (kn_store_open(&st, path, &err) != 0) {
        umount(fs);
        fail_msg("open: %s", err.msg);
    }
    assert_string_equal(kn_store_storage_error(st, &errors), "");
    assert_int_equal(errors, 0);

    /* fill the filesystem, then write until the store cannot */
    memset(chunk, 'x', sizeof(chunk));
    memset(message, 'm', 16 * 1024);
    fp = fopen(filler, "wb");
    assert_non_null(fp);
    while (fwrite(chunk, 1, sizeof(chunk), fp) == sizeof(chunk) && fflush(fp) == 0) {
    }
    fclose(fp);
    for (int i = 0; i < 1000 && rc == 0; i++) {
        rc = kn_store_event_add(st, "LOAD", "", "", 0, "", message, T_NOW_MS);
    }
    assert_int_equal(rc, KN_EIO);
    assert_non_null(strstr(kn_store_storage_error(st, &errors), "database or disk is full"));
    assert_non_null(strstr(kn_store_storage_error(st, NULL), path));
    assert_true(errors >= 1);

    /* space again: the next write works and clears it */
    assert_int_equal(unlink(filler), 0);
    assert_int_equal(kn_store_event_add(st, "LOAD", "", "", 0, "", "x", T_NOW_MS), 0);
    assert_string_equal(kn_store_storage_error(st, NULL), "");

    kn_store_close(st);
    assert_int_equal(umount(fs), 0);
    free(fs);
    free(path);
    free(filler);
    free(message);
}

static void test_bad_path(void **state)
{
    struct fixture *f = *state;
    struct kn_store *st = NULL;
    struct kn_error err;
    char *path = kn_asprintf("%s/no/such/dir/kanaria.db", f->dir);

    kn_error_clear(&err);
    assert_int_equal(kn_store_open(&st, path, &err), KN_EIO);
    assert_null(st);
    assert_non_null(strstr(err.msg, "cannot open"));
    free(path);
}

/* Crash without closing: the child writes and _exits with the WAL not checkpointed. */
static void test_crash_keeps_data(void **state)
{
    struct fixture *f = *state;
    struct kn_deployment d = {0};
    struct kn_error err;
    int status = 0;
    pid_t pid;

    kn_store_close(f->st);
    f->st = NULL;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct kn_store *st = NULL;
        struct kn_deployment_new n = new_deploy("web", C1);
        long long id = 0;

        if (kn_store_open(&st, f->path, NULL) != 0 ||
            kn_store_deployment_add(st, &n, T_NOW_MS, &id) != 0 || id != 1) {
            _exit(1);
        }
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    kn_error_clear(&err);
    assert_int_equal(kn_store_open(&f->st, f->path, &err), 0);
    kn_deployment_release(&d);
    assert_int_equal(kn_store_deployment_get(f->st, 1, &d), 0);
    assert_string_equal(d.commit, C1);
    assert_int_equal(d.status, KN_DEPLOY_PLANNED);
    assert_int_equal(current_of(f->st, "web"), 1);
    kn_deployment_release(&d);
}

/* ---- repositories and apps ----------------------------------------------------------------- */

static void test_repo_states(void **state)
{
    struct fixture *f = *state;
    struct kn_repo_state r;

    assert_int_equal(kn_store_repo_get(f->st, "demo", &r), KN_ENOTFOUND);

    /* Failing before the first fetch. */
    assert_int_equal(kn_store_repo_failed(f->st, "demo", "connection refused", 1000), 0);
    assert_int_equal(kn_store_repo_get(f->st, "demo", &r), 0);
    assert_string_equal(r.name, "demo");
    assert_string_equal(r.head, "");
    assert_int_equal(r.fetched_at, 0);
    assert_string_equal(r.error, "connection refused");
    assert_int_equal(r.failing_since, 1000);

    assert_int_equal(kn_store_repo_fetched(f->st, "demo", C1, 2000), 0);
    assert_int_equal(kn_store_repo_get(f->st, "demo", &r), 0);
    assert_string_equal(r.head, C1);
    assert_int_equal(r.fetched_at, 2000);
    assert_string_equal(r.error, "");
    assert_int_equal(r.failing_since, 0);

    /* A failure keeps head; failing_since is when it started failing. */
    assert_int_equal(kn_store_repo_failed(f->st, "demo", "timeout", 3000), 0);
    assert_int_equal(kn_store_repo_failed(f->st, "demo", "auth failed", 4000), 0);
    assert_int_equal(kn_store_repo_get(f->st, "demo", &r), 0);
    assert_string_equal(r.head, C1);
    assert_int_equal(r.fetched_at, 2000);
    assert_string_equal(r.error, "auth failed");
    assert_int_equal(r.failing_since, 3000);

    assert_int_equal(kn_store_repo_fetched(f->st, "demo", C2, 5000), 0);
    assert_int_equal(kn_store_repo_get(f->st, "demo", &r), 0);
    assert_string_equal(r.head, C2);
    assert_int_equal(r.failing_since, 0);
    assert_string_equal(r.error, "");
}

struct seen_apps {
    char names[8][260];
    int n;
};

static int collect_app(const struct kn_app_state *a, void *data)
{
    struct seen_apps *s = data;

    assert_true(s->n < 8);
    snprintf(s->names[s->n++], sizeof(s->names[0]), "%s/%s", a->repo, a->name);
    return 0;
}

static void test_app_seen_upsert(void **state)
{
    struct fixture *f = *state;
    struct kn_app_state a = {0};
    struct seen_apps seen;
    char long_error[4000];

    kn_app_state_release(&a);
    assert_int_equal(kn_store_app_get(f->st, "demo", "web", &a), KN_ENOTFOUND);
    assert_int_equal(kn_store_app_seen(f->st, "demo", "web", "apps/web", C1, NULL), 0);
    kn_app_state_release(&a);
    assert_int_equal(kn_store_app_get(f->st, "demo", "web", &a), 0);
    assert_string_equal(a.path, "apps/web");
    assert_string_equal(a.last_seen, C1);
    assert_string_equal(a.error, "");
    assert_string_equal(a.last_good, "");
    assert_int_equal(a.current_deployment, 0);

    /* An update keeps what app_seen does not own. */
    long long id = add(f->st, "web", C1, T_NOW_MS);
    assert_int_equal(kn_store_deployment_set_status(f->st, id, KN_DEPLOY_RUNNING, NULL, T_NOW_MS),
                     0);
    assert_int_equal(kn_store_deployment_set_status(f->st, id, KN_DEPLOY_SUCCESS, NULL, T_NOW_MS),
                     0);
    memset(long_error, 'x', sizeof(long_error) - 1);
    long_error[sizeof(long_error) - 1] = '\0';
    assert_int_equal(kn_store_app_seen(f->st, "demo", "web", "apps/www", C2, long_error), 0);
    kn_app_state_release(&a);
    assert_int_equal(kn_store_app_get(f->st, "demo", "web", &a), 0);
    assert_string_equal(a.path, "apps/web"); /* an invalid folder does not move the app */
    assert_string_equal(a.last_seen, C2);
    assert_string_equal(a.last_good, C1);
    assert_string_equal(a.error, long_error); /* whole, not cut at a fixed size */

    assert_int_equal(kn_store_app_seen(f->st, "other", "api", "api", C1, NULL), 0);
    assert_int_equal(kn_store_app_seen(f->st, "demo", "api", "api", C1, NULL), 0);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kn_store_apps(f->st, NULL, collect_app, &seen), 0);
    assert_int_equal(seen.n, 3);
    assert_string_equal(seen.names[0], "demo/api");
    assert_string_equal(seen.names[1], "demo/web");
    assert_string_equal(seen.names[2], "other/api");
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kn_store_apps(f->st, "other", collect_app, &seen), 0);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.names[0], "other/api");
    kn_app_state_release(&a);
}

/* A detection that carried apps over unloaded: the apps seen at the head before are seen at the
 * new one, except those whose config left the head, of that repository only. */
static void test_apps_carry(void **state)
{
    struct fixture *f = *state;
    struct kn_app_state a = {0};
    const char *removed[] = {"apps/gone/app.kanaria.yaml"};

    assert_int_equal(kn_store_app_seen(f->st, "demo", "web", "apps/web/app.kanaria.yaml", C1,
                                       NULL), 0);
    assert_int_equal(kn_store_app_seen(f->st, "demo", "bad", "apps/bad/app.kanaria.yaml", C1,
                                       "apps/bad/app.kanaria.yaml:1:1: broken"), 0);
    assert_int_equal(kn_store_app_seen(f->st, "demo", "gone", "apps/gone/app.kanaria.yaml", C1,
                                       NULL), 0);
    assert_int_equal(kn_store_app_seen(f->st, "demo", "old", "apps/old/app.kanaria.yaml", C3,
                                       NULL), 0);
    assert_int_equal(kn_store_app_seen(f->st, "other", "web", "apps/web/app.kanaria.yaml", C1,
                                       NULL), 0);
    assert_int_equal(kn_store_apps_carry(f->st, "demo", C1, C2, removed, 1), 0);
    const char *want[][3] = {
        {"demo", "web", C2}, {"demo", "bad", C2}, {"demo", "gone", C1}, {"demo", "old", C3},
        {"other", "web", C1},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(kn_store_app_get(f->st, want[i][0], want[i][1], &a), 0);
        assert_string_equal(a.last_seen, want[i][2]);
        if (strcmp(want[i][1], "bad") == 0) {
            assert_string_equal(a.error, "apps/bad/app.kanaria.yaml:1:1: broken");
        }
        kn_app_state_release(&a);
    }
    assert_int_equal(kn_store_apps_carry(f->st, "demo", C2, C3, NULL, 0), 0);
    assert_int_equal(kn_store_app_get(f->st, "demo", "web", &a), 0);
    assert_string_equal(a.last_seen, C3);
    kn_app_state_release(&a);
}

/* ---- deployments --------------------------------------------------------------------------- */

static void test_deployment_add_planned(void **state)
{
    struct fixture *f = *state;
    struct kn_deployment d = {0};
    struct seen_events ev;
    long long id;

    assert_int_equal(kn_store_app_seen(f->st, "demo", "web", "apps/web", C1, NULL), 0);
    id = add(f->st, "web", C1, T_NOW_MS);
    kn_deployment_release(&d);
    assert_int_equal(kn_store_deployment_get(f->st, id, &d), 0);
    assert_int_equal(d.id, id);
    assert_string_equal(d.repo, "demo");
    assert_string_equal(d.app, "web");
    assert_string_equal(d.commit, C1);
    assert_string_equal(d.author, "Ada <ada@example.com>");
    assert_string_equal(d.message, "bump the greeting");
    assert_string_equal(d.strategy, "PIPELINE");
    assert_string_equal(d.summary, "image changes from v1 to v2");
    assert_int_equal(d.status, KN_DEPLOY_PLANNED);
    assert_string_equal(d.reason, "");
    assert_int_equal(d.created_at, T_NOW_MS);
    assert_int_equal(d.updated_at, T_NOW_MS);
    assert_int_equal(d.started_at, 0);
    assert_int_equal(d.finished_at, 0);
    assert_int_equal(current_of(f->st, "web"), id);

    events_all(f->st, &ev);
    assert_int_equal(ev.n, 1);
    assert_string_equal(ev.e[0].type, "PLANNED");
    assert_string_equal(ev.e[0].repo, "demo");
    assert_string_equal(ev.e[0].app, "web");
    assert_int_equal(ev.e[0].deployment, id);
    assert_string_equal(ev.e[0].actor, "kanaria");
    assert_int_equal(ev.e[0].at, T_NOW_MS);
    assert_non_null(strstr(ev.e[0].message, "1111111"));

    kn_deployment_release(&d);
    assert_int_equal(kn_store_deployment_get(f->st, id + 100, &d), KN_ENOTFOUND);
    kn_deployment_release(&d);
}

static void test_newest_wins(void **state)
{
    struct fixture *f = *state;
    struct kn_deployment_new again = new_deploy("web", C1);
    struct kn_deployment d = {0};
    struct seen_events ev;
    long long id1, id2, id = 0;

    id1 = add(f->st, "web", C1, 1000);
    id2 = add(f->st, "web", C2, 2000);
    kn_deployment_release(&d);
    assert_int_equal(kn_store_deployment_get(f->st, id1, &d), 0);
    assert_int_equal(d.status, KN_DEPLOY_SUPERSEDED);
    assert_string_equal(d.reason, "superseded by 2222222");
    assert_int_equal(d.finished_at, 2000);
    assert_int_equal(status_of(f->st, id2), KN_DEPLOY_PLANNED);
    assert_int_equal(current_of(f->st, "web"), id2);

    events_all(f->st, &ev);
    assert_int_equal(ev.n, 3);
    assert_string_equal(ev.e[0].type, "PLANNED");
    assert_string_equal(ev.e[1].type, "SUPERSEDED");
    assert_int_equal(ev.e[1].deployment, id1);
    assert_string_equal(ev.e[1].message, "superseded by 2222222");
    assert_string_equal(ev.e[2].type, "PLANNED");
    assert_int_equal(ev.e[2].deployment, id2);

    /* Same commit again: refused, nothing written. */
    assert_int_equal(kn_store_deployment_add(f->st, &again, 3000, &id), KN_EEXISTS);
    assert_int_equal(id, 0);
    events_all(f->st, &ev);
    assert_int_equal(ev.n, 3);
    assert_int_equal(status_of(f->st, id2), KN_DEPLOY_PLANNED);
    assert_int_equal(current_of(f->st, "web"), id2);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM deployments"), 2);

    /* Another app is not touched. */
    id = add(f->st, "api", C3, 4000);
    assert_int_equal(status_of(f->st, id2), KN_DEPLOY_PLANNED);
    assert_int_equal(current_of(f->st, "api"), id);
    kn_deployment_release(&d);
}

static void test_running_not_superseded(void **state)
{
    struct fixture *f = *state;
    long long id1, id2, id3;

    id1 = add(f->st, "web", C1, 1000);
    assert_int_equal(kn_store_deployment_set_status(f->st, id1, KN_DEPLOY_RUNNING, NULL, 1100), 0);
    id2 = add(f->st, "web", C2, 2000);
    assert_int_equal(status_of(f->st, id1), KN_DEPLOY_RUNNING);
    assert_int_equal(status_of(f->st, id2), KN_DEPLOY_PLANNED);
    assert_int_equal(current_of(f->st, "web"), id1);

    /* A third waits too and replaces the second. */
    id3 = add(f->st, "web", C3, 3000);
    assert_int_equal(status_of(f->st, id2), KN_DEPLOY_SUPERSEDED);
    assert_int_equal(status_of(f->st, id1), KN_DEPLOY_RUNNING);
    assert_int_equal(current_of(f->st, "web"), id1);

    assert_int_equal(kn_store_deployment_set_status(f->st, id1, KN_DEPLOY_SUCCESS, "done", 4000),
                     0);
    assert_int_equal(current_of(f->st, "web"), id3);
    assert_int_equal(kn_store_deployment_set_status(f->st, id3, KN_DEPLOY_RUNNING, NULL, 5000), 0);
    assert_int_equal(kn_store_deployment_set_status(f->st, id3, KN_DEPLOY_CANCELLED, "stop", 6000),
                     0);
    assert_int_equal(current_of(f->st, "web"), 0);
}

static void test_set_status_transitions(void **state)
{
    struct fixture *f = *state;
    struct kn_deployment d = {0};
    struct kn_app_state a = {0};
    struct seen_events ev;
    long long id1, id2, id3;

    assert_int_equal(kn_store_app_seen(f->st, "demo", "web", "apps/web", C1, NULL), 0);
    id1 = add(f->st, "web", C1, 1000);
    assert_int_equal(kn_store_deployment_set_status(f->st, id1, KN_DEPLOY_RUNNING, NULL, 1100), 0);
    kn_deployment_release(&d);
    assert_int_equal(kn_store_deployment_get(f->st, id1, &d), 0);
    assert_int_equal(d.status, KN_DEPLOY_RUNNING);
    assert_int_equal(d.started_at, 1100);
    assert_int_equal(d.finished_at, 0);
    assert_int_equal(d.updated_at, 1100);
    assert_int_equal(kn_store_deployment_set_status(f->st, id1, KN_DEPLOY_SUCCESS, NULL, 1200), 0);
    kn_deployment_release(&d);
    assert_int_equal(kn_store_deployment_get(f->st, id1, &d), 0);
    assert_int_equal(d.status, KN_DEPLOY_SUCCESS);
    assert_int_equal(d.started_at, 1100);
    assert_int_equal(d.finished_at, 1200);
    kn_app_state_release(&a);
    assert_int_equal(kn_store_app_get(f->st, "demo", "web", &a), 0);
    assert_string_equal(a.last_good, C1);
    assert_int_equal(a.current_deployment, 0);

    /* Out of a final status: refused, nothing changed, no event. */
    events_all(f->st, &ev);
    int before = ev.n;
    assert_int_equal(kn_store_deployment_set_status(f->st, id1, KN_DEPLOY_RUNNING, NULL, 1300),
                     KN_EINVAL);
    assert_int_equal(kn_store_deployment_set_status(f->st, id1, KN_DEPLOY_FAILURE, NULL, 1300),
                     KN_EINVAL);
    kn_deployment_release(&d);
    assert_int_equal(kn_store_deployment_get(f->st, id1, &d), 0);
    assert_int_equal(d.status, KN_DEPLOY_SUCCESS);
    assert_int_equal(d.finished_at, 1200);
    events_all(f->st, &ev);
    assert_int_equal(ev.n, before);

    /* A rollback: FAILURE after ROLLING_BACK marks the app. */
    id2 = add(f->st, "web", C2, 2000);
    assert_int_equal(kn_store_deployment_set_status(f->st, id2, KN_DEPLOY_RUNNING, NULL, 2100), 0);
    assert_int_equal(
        kn_store_deployment_set_status(f->st, id2, KN_DEPLOY_ROLLING_BACK, "error rate", 2200), 0);
    assert_int_equal(current_of(f->st, "web"), id2);
    assert_int_equal(
        kn_store_deployment_set_status(f->st, id2, KN_DEPLOY_FAILURE, "rolled back", 2300), 0);
    kn_deployment_release(&d);
    assert_int_equal(kn_store_deployment_get(f->st, id2, &d), 0);
    assert_int_equal(d.status, KN_DEPLOY_FAILURE);
    assert_string_equal(d.reason, "rolled back");
    assert_int_equal(d.finished_at, 2300);
    kn_app_state_release(&a);
    assert_int_equal(kn_store_app_get(f->st, "demo", "web", &a), 0);
    assert_string_equal(a.rolled_back_from, C2);
    assert_string_equal(a.last_good, C1);
    assert_int_equal(a.current_deployment, 0);
    events_all(f->st, &ev);
    assert_string_equal(ev.e[ev.n - 1].type, "FAILURE");
    assert_string_equal(ev.e[ev.n - 1].message, "rolled back");
    assert_string_equal(ev.e[ev.n - 2].type, "ROLLING_BACK");
    assert_string_equal(ev.e[ev.n - 2].message, "error rate");

    /* A next success clears it. */
    id3 = add(f->st, "web", C3, 3000);
    assert_int_equal(kn_store_deployment_set_status(f->st, id3, KN_DEPLOY_RUNNING, NULL, 3100), 0);
    kn_app_state_release(&a);
    assert_int_equal(kn_store_app_get(f->st, "demo", "web", &a), 0);
    assert_string_equal(a.rolled_back_from, C2);
    assert_int_equal(kn_store_deployment_set_status(f->st, id3, KN_DEPLOY_SUCCESS, NULL, 3200), 0);
    kn_app_state_release(&a);
    assert_int_equal(kn_store_app_get(f->st, "demo", "web", &a), 0);
    assert_string_equal(a.rolled_back_from, "");
    assert_string_equal(a.last_good, C3);

    /* A failure without a rollback does not mark the app. */
    id1 = add(f->st, "web", "4444444", 4000);
    assert_int_equal(kn_store_deployment_set_status(f->st, id1, KN_DEPLOY_RUNNING, NULL, 4100), 0);
    assert_int_equal(kn_store_deployment_set_status(f->st, id1, KN_DEPLOY_FAILURE, NULL, 4200), 0);
    kn_app_state_release(&a);
    assert_int_equal(kn_store_app_get(f->st, "demo", "web", &a), 0);
    assert_string_equal(a.rolled_back_from, "");
    assert_string_equal(a.last_good, C3);

    assert_int_equal(kn_store_deployment_set_status(f->st, 999, KN_DEPLOY_RUNNING, NULL, 1),
                     KN_ENOTFOUND);
    kn_deployment_release(&d);
    kn_app_state_release(&a);
}

static void test_deployments_list(void **state)
{
    struct fixture *f = *state;
    static const char *const commits[] = {"c1", "c2", "c3", "c4", "c5"};
    struct seen_deployments seen;
    long long ids[5];

    for (int i = 0; i < 5; i++) {
        ids[i] = add(f->st, "web", commits[i], 1000 * (i + 1));
    }
    add(f->st, "api", "c1", 9000);

    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kn_store_deployments(f->st, "demo", "web", 3, collect_deployment, &seen), 0);
    assert_int_equal(seen.n, 3);
    assert_int_equal(seen.id[0], ids[4]);
    assert_int_equal(seen.id[1], ids[3]);
    assert_int_equal(seen.id[2], ids[2]);
    assert_int_equal(seen.status[0], KN_DEPLOY_PLANNED);
    assert_int_equal(seen.status[1], KN_DEPLOY_SUPERSEDED);

    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kn_store_deployments(f->st, "demo", "web", 0, collect_deployment, &seen), 0);
    assert_int_equal(seen.n, 5);
    assert_int_equal(seen.id[4], ids[0]);

    /* A non-zero return stops and is returned. */
    memset(&seen, 0, sizeof(seen));
    seen.stop_after = 2;
    assert_int_equal(kn_store_deployments(f->st, "demo", "web", 0, collect_deployment, &seen), 7);
    assert_int_equal(seen.n, 2);

    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kn_store_deployments(f->st, "demo", "none", 0, collect_deployment, &seen), 0);
    assert_int_equal(seen.n, 0);
}

static void test_deployments_open(void **state)
{
    struct fixture *f = *state;
    struct seen_deployments seen;
    long long web1, web2, api1, db1;

    web1 = add(f->st, "web", C1, 1000);
    api1 = add(f->st, "api", C1, 1100);
    db1 = add(f->st, "db", C1, 1200);
    assert_int_equal(kn_store_deployment_set_status(f->st, web1, KN_DEPLOY_RUNNING, NULL, 1300), 0);
    assert_int_equal(kn_store_deployment_set_status(f->st, api1, KN_DEPLOY_RUNNING, NULL, 1300), 0);
    assert_int_equal(
        kn_store_deployment_set_status(f->st, api1, KN_DEPLOY_ROLLING_BACK, NULL, 1400), 0);
    assert_int_equal(kn_store_deployment_set_status(f->st, db1, KN_DEPLOY_RUNNING, NULL, 1300), 0);
    assert_int_equal(kn_store_deployment_set_status(f->st, db1, KN_DEPLOY_SUCCESS, NULL, 1500), 0);
    web2 = add(f->st, "web", C2, 1600);

    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kn_store_deployments_open(f->st, collect_deployment, &seen), 0);
    assert_int_equal(seen.n, 3);
    assert_int_equal(seen.id[0], web1);
    assert_int_equal(seen.status[0], KN_DEPLOY_RUNNING);
    assert_int_equal(seen.id[1], api1);
    assert_int_equal(seen.status[1], KN_DEPLOY_ROLLING_BACK);
    assert_int_equal(seen.id[2], web2);
    assert_int_equal(seen.status[2], KN_DEPLOY_PLANNED);
}

/* A callback may write to the store: lists are read before the first call. */
static int finish_each(const struct kn_deployment *d, void *data)
{
    struct kn_store *st = data;

    assert_int_equal(
        kn_store_deployment_set_status(st, d->id, KN_DEPLOY_CANCELLED, "shutdown", 5000), 0);
    return 0;
}

static void test_callback_writes(void **state)
{
    struct fixture *f = *state;
    struct seen_deployments seen;

    add(f->st, "web", C1, 1000);
    add(f->st, "api", C1, 1000);
    assert_int_equal(kn_store_deployments_open(f->st, finish_each, f->st), 0);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kn_store_deployments_open(f->st, collect_deployment, &seen), 0);
    assert_int_equal(seen.n, 0);
}

static void test_plan_json(void **state)
{
    struct fixture *f = *state;
    struct kn_deployment_new d = new_deploy("web", C1);
    const char *plan = "{\"diff\":[{\"path\":\"spec.image\",\"from\":\"v1\",\"to\":\"v2 'q'\"}],"
                       "\"note\":\"ünïcode; DROP TABLE deployments;--\"}";
    long long id = 0;
    char *got;

    d.plan_json = plan;
    assert_int_equal(kn_store_deployment_add(f->st, &d, T_NOW_MS, &id), 0);
    got = kn_store_deployment_plan(f->st, id);
    assert_non_null(got);
    assert_string_equal(got, plan);
    free(got);

    id = add(f->st, "api", C1, T_NOW_MS);
    assert_null(kn_store_deployment_plan(f->st, id));
    assert_null(kn_store_deployment_plan(f->st, 12345));
}

/* ---- stages, events, approvals, analysis --------------------------------------------------- */

static void test_stages(void **state)
{
    struct fixture *f = *state;
    long long id = add(f->st, "web", C1, 1000);
    char *v;

    assert_int_equal(kn_store_stage_set(f->st, id, 0, "CANARY_ROLLOUT", "NOT_STARTED", 1000), 0);
    assert_int_equal(kn_store_stage_set(f->st, id, 0, "CANARY_ROLLOUT", "RUNNING", 1100), 0);
    assert_int_equal(kn_store_stage_set(f->st, id, 0, "CANARY_ROLLOUT", "SUCCESS", 1200), 0);
    assert_int_equal(kn_store_stage_set(f->st, id, 1, "ANALYSIS", "RUNNING", 1300), 0);
    assert_int_equal(sql_int(f->path, "SELECT started_at FROM stages WHERE idx = 0"), 1100);
    assert_int_equal(sql_int(f->path, "SELECT finished_at FROM stages WHERE idx = 0"), 1200);
    assert_int_equal(sql_int(f->path, "SELECT finished_at FROM stages WHERE idx = 1"), 0);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM stages WHERE status = 'SUCCESS'"
                                      " AND name = 'CANARY_ROLLOUT'"),
                     1);

    assert_null(kn_store_stage_meta_get(f->st, id, 1, "started"));
    assert_int_equal(kn_store_stage_meta_set(f->st, id, 1, "started", "1300"), 0);
    assert_int_equal(kn_store_stage_meta_set(f->st, id, 2, "started", "other stage"), 0);
    v = kn_store_stage_meta_get(f->st, id, 1, "started");
    assert_string_equal(v, "1300");
    free(v);
    assert_int_equal(kn_store_stage_meta_set(f->st, id, 1, "started", "1400"), 0);
    v = kn_store_stage_meta_get(f->st, id, 1, "started");
    assert_string_equal(v, "1400");
    free(v);
    v = kn_store_stage_meta_get(f->st, id, 2, "started");
    assert_string_equal(v, "other stage");
    free(v);

    /* Foreign keys are on. */
    assert_int_equal(kn_store_stage_set(f->st, id + 50, 0, "X", "RUNNING", 1), KN_ENOTFOUND);
    assert_int_equal(kn_store_stage_meta_set(f->st, id + 50, 0, "k", "v"), KN_ENOTFOUND);
}

static void test_events_paging(void **state)
{
    struct fixture *f = *state;
    struct seen_events ev;
    char msg[32];

    for (int i = 0; i < 10; i++) {
        snprintf(msg, sizeof(msg), "event %d", i);
        assert_int_equal(
            kn_store_event_add(f->st, "TRIGGERED", "demo", "web", 0, "alice", msg, 1000 + i), 0);
    }
    assert_int_equal(kn_store_event_add(f->st, NULL, "demo", "web", 0, "alice", "x", 1), KN_EINVAL);

    memset(&ev, 0, sizeof(ev));
    assert_int_equal(kn_store_events(f->st, 0, 4, collect_event, &ev), 0);
    assert_int_equal(ev.n, 4);
    assert_string_equal(ev.e[0].message, "event 0");
    assert_string_equal(ev.e[3].message, "event 3");
    assert_string_equal(ev.e[0].actor, "alice");
    assert_int_equal(ev.e[0].deployment, 0);
    assert_int_equal(ev.e[2].at, 1002);

    long long last = ev.e[3].id;
    memset(&ev, 0, sizeof(ev));
    assert_int_equal(kn_store_events(f->st, last, 4, collect_event, &ev), 0);
    assert_int_equal(ev.n, 4);
    assert_string_equal(ev.e[0].message, "event 4");
    assert_true(ev.e[0].id > last);

    memset(&ev, 0, sizeof(ev));
    assert_int_equal(kn_store_events(f->st, last, 0, collect_event, &ev), 0);
    assert_int_equal(ev.n, 6);
    assert_string_equal(ev.e[5].message, "event 9");
    assert_int_equal(kn_store_events(f->st, 0, -1, collect_event, &ev), KN_EINVAL);

    /* kn_store_events is kn_store_events_find without a filter: limit 0 is all there too */
    struct kn_event_filter other = {.app = "api"};
    assert_int_equal(kn_store_event_add(f->st, "SUCCEEDED", "demo", "api", 0, "bob", "api", 2000),
                     0);
    memset(&ev, 0, sizeof(ev));
    assert_int_equal(kn_store_events_find(f->st, last, 0, NULL, collect_event, &ev), 0);
    assert_int_equal(ev.n, 7);
    assert_string_equal(ev.e[6].message, "api");
    memset(&ev, 0, sizeof(ev));
    assert_int_equal(kn_store_events_find(f->st, 0, 0, &other, collect_event, &ev), 0);
    assert_int_equal(ev.n, 1);
    assert_string_equal(ev.e[0].actor, "bob");
    assert_int_equal(kn_store_events_find(f->st, 0, -1, NULL, collect_event, &ev), KN_EINVAL);
}


static int join_approval(const char *who, const char *decision, void *data)
{
    char *buf = data;
    size_t n = strlen(buf);
    snprintf(buf + n, 512 - n, "%s:%s ", who, decision);
    return 0;
}

/* The approval records of a stage as "who:DECISION " pairs, oldest first. */
static const char *approvals_of(struct kn_store *st, long long id, int stage)
{
    static char buf[512];
    buf[0] = '\0';
    assert_int_equal(kn_store_approvals(st, id, stage, join_approval, buf), 0);
    return buf;
}

/* A schema 1 database (as migration 1 made it) with a deployment and its stage upgrades without losing a row: the deployments table is rebuilt
 * with foreign keys off, so the stages that point at it are not cascaded away. */
/* The commit's time is kept beside the deployment (lead time counts from it); 0 when unknown. */
static void test_commit_time(void **state)
{
    struct fixture *f = *state;
    struct kn_deployment_new n = {.repo = "demo", .app = "web", .commit = C1, .author = "Ada",
                                  .message = "m", .strategy = "PIPELINE", .summary = "s",
                                  .commit_time = T_NOW_MS - 60000};
    struct kn_deployment d = {0};
    long long id = 0;

    assert_int_equal(kn_store_deployment_add(f->st, &n, T_NOW_MS, &id), 0);
    assert_int_equal(kn_store_deployment_get(f->st, id, &d), 0);
    assert_int_equal(d.commit_time, T_NOW_MS - 60000);
    assert_int_equal(d.created_at, T_NOW_MS);
    kn_deployment_release(&d);
    n.commit = C2;
    n.commit_time = 0;
    assert_int_equal(kn_store_deployment_add(f->st, &n, T_NOW_MS, &id), 0);
    assert_int_equal(kn_store_deployment_get(f->st, id, &d), 0);
    assert_int_equal(d.commit_time, 0);
    kn_deployment_release(&d);
}

static void test_migration_keeps_rows(void **state)
{
    char *dir = kn_test_tmpdir();
    char *path = kn_asprintf("%s/kanaria.db", dir);
    struct kn_deployment_new n = {.repo = "deploy", .app = "hello", .commit = C1,
                                  .strategy = "QUICK_SYNC", .trigger = "self-heal"};
    struct kn_store *st = NULL;
    struct kn_deployment d = {0};
    struct kn_error err;
    long long id = 0;

    (void)state;
    sql_exec(path,
             "CREATE TABLE apps (repo TEXT NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL"
             " DEFAULT '', last_good TEXT NOT NULL DEFAULT '', last_seen TEXT NOT NULL DEFAULT '',"
             " current_deployment INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '',"
             " rolled_back_from TEXT NOT NULL DEFAULT '', PRIMARY KEY (repo, name));"
             "CREATE TABLE deployments (id INTEGER PRIMARY KEY AUTOINCREMENT, repo TEXT NOT NULL,"
             " app TEXT NOT NULL, commit_id TEXT NOT NULL, author TEXT NOT NULL DEFAULT '',"
             " message TEXT NOT NULL DEFAULT '', strategy TEXT NOT NULL DEFAULT '',"
             " summary TEXT NOT NULL DEFAULT '', plan_json TEXT, status TEXT NOT NULL,"
             " reason TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL DEFAULT 0,"
             " updated_at INTEGER NOT NULL DEFAULT 0, started_at INTEGER NOT NULL DEFAULT 0,"
             " finished_at INTEGER NOT NULL DEFAULT 0, UNIQUE (repo, app, commit_id));"
             "CREATE INDEX deployments_by_app ON deployments (repo, app, id);"
             "CREATE INDEX deployments_by_status ON deployments (status, id);"
             "CREATE TABLE stages (deployment INTEGER NOT NULL REFERENCES deployments (id)"
             " ON DELETE CASCADE, idx INTEGER NOT NULL, name TEXT NOT NULL DEFAULT '',"
             " status TEXT NOT NULL DEFAULT '', started_at INTEGER NOT NULL DEFAULT 0,"
             " finished_at INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (deployment, idx));"
             "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL,"
             " type TEXT NOT NULL, repo TEXT NOT NULL DEFAULT '', app TEXT NOT NULL DEFAULT '',"
             " deployment INTEGER NOT NULL DEFAULT 0, actor TEXT NOT NULL DEFAULT '',"
             " message TEXT NOT NULL DEFAULT '');"
             "CREATE TABLE repositories (name TEXT PRIMARY KEY, head TEXT NOT NULL DEFAULT '',"
             " fetched_at INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '',"
             " failing_since INTEGER NOT NULL DEFAULT 0);"
             "CREATE TABLE stage_meta (deployment INTEGER NOT NULL REFERENCES deployments (id)"
             " ON DELETE CASCADE, idx INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL"
             " DEFAULT '', PRIMARY KEY (deployment, idx, key));"
             "CREATE TABLE approvals (deployment INTEGER NOT NULL REFERENCES deployments (id)"
             " ON DELETE CASCADE, stage INTEGER NOT NULL, who TEXT NOT NULL,"
             " decision TEXT NOT NULL, at INTEGER NOT NULL);"
             "CREATE TABLE analysis_records (id INTEGER PRIMARY KEY AUTOINCREMENT,"
             " deployment INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,"
             " stage INTEGER NOT NULL, at INTEGER NOT NULL, check_name TEXT NOT NULL DEFAULT '',"
             " query TEXT NOT NULL DEFAULT '', values_json TEXT NOT NULL DEFAULT '',"
             " bound TEXT NOT NULL DEFAULT '', verdict TEXT NOT NULL DEFAULT '');"
             "INSERT INTO apps (repo, name, last_good) VALUES ('deploy', 'hello', '" C1 "');"
             "INSERT INTO deployments (repo, app, commit_id, status) VALUES ('deploy', 'hello', '"
             C1 "', 'SUCCESS');"
             "INSERT INTO stages (deployment, idx, name, status) VALUES (1, 0, 'SYNC', 'SUCCESS');"
             "PRAGMA user_version = 1;");
    kn_error_clear(&err);
    if (kn_store_open(&st, path, &err) != 0) {
        fail_msg("open: %s", err.msg);
    }
    assert_int_equal(sql_int(path, "PRAGMA user_version"), kn_store_schema_version());
    assert_int_equal(sql_int(path, "SELECT count(*) FROM stages WHERE deployment = 1"), 1);
    kn_deployment_release(&d);
    assert_int_equal(kn_store_deployment_get(st, 1, &d), 0);
    assert_string_equal(d.trigger, "commit");
    assert_int_equal(d.commit_time, 0); /* not known for a deployment recorded before */
    assert_int_equal(kn_store_deployment_add(st, &n, T_NOW_MS, &id), 0);
    assert_int_equal(id, 2);
    kn_store_close(st);
    kn_test_rmtree(dir);
    free(path);
    free(dir);
    kn_deployment_release(&d);
}

/* A schema 2 database (drift columns, deployments with a trigger) upgrades to 3 keeping its app
 * rows; the app is then not orphaned until kn_store_app_orphan says so. */
static void test_migration_from_2_keeps_apps(void **state)
{
    char *dir = kn_test_tmpdir();
    char *path = kn_asprintf("%s/kanaria.db", dir);
    struct kn_store *st = NULL;
    struct kn_app_state a = {0};
    struct kn_deployment d = {0};
    struct kn_error err;

    (void)state;
    /* schema 2 exactly as its migrations made it: a new store without what 3 to 6 added */
    if (kn_store_open(&st, path, &err) != 0) {
        fail_msg("create: %s", err.msg);
    }
    kn_store_close(st);
    st = NULL;
    sql_exec(path,
             "DROP TABLE platform_memos;"
             "DROP TABLE notification_state;"
             "ALTER TABLE apps DROP COLUMN orphaned_at;"
             "ALTER TABLE apps DROP COLUMN pruned_at;"
             "ALTER TABLE deployments DROP COLUMN commit_time;"
             "INSERT INTO apps (repo, name, path, last_good, drift, self_heal) VALUES ('deploy',"
             " 'hello', 'hello/app.kanaria.yaml', '" C1 "', 'no primary instance runs', 1);"
             "INSERT INTO deployments (repo, app, commit_id, status, trigger) VALUES ('deploy',"
             " 'hello', '" C1 "', 'SUCCESS', 'self-heal');"
             "PRAGMA user_version = 2;");
    kn_error_clear(&err);
    if (kn_store_open(&st, path, &err) != 0) {
        fail_msg("open: %s", err.msg);
    }
    assert_int_equal(sql_int(path, "PRAGMA user_version"), kn_store_schema_version());
    assert_true(kn_store_schema_version() >= 3);
    kn_app_state_release(&a);
    assert_int_equal(kn_store_app_get(st, "deploy", "hello", &a), 0);
    assert_string_equal(a.path, "hello/app.kanaria.yaml");
    assert_string_equal(a.last_good, C1);
    assert_string_equal(a.drift, "no primary instance runs");
    assert_int_equal(a.self_heal, 1);
    assert_int_equal(a.orphaned_at, 0);
    assert_int_equal(a.pruned_at, 0);
    kn_deployment_release(&d);
    assert_int_equal(kn_store_deployment_get(st, 1, &d), 0);
    assert_string_equal(d.trigger, "self-heal");
    assert_int_equal(kn_store_app_orphan(st, "deploy", "hello", "its folder is gone", T_NOW_MS), 1);
    kn_app_state_release(&a);
    assert_int_equal(kn_store_app_get(st, "deploy", "hello", &a), 0);
    assert_int_equal(a.orphaned_at, T_NOW_MS);
    kn_store_close(st);
    kn_test_rmtree(dir);
    free(path);
    free(dir);
    kn_app_state_release(&a);
    kn_deployment_release(&d);
}

/* Orphaned once (one event), pruned only while orphaned, restored when the folder is back. */
static void test_orphan_prune_restore(void **state)
{
    struct fixture *f = *state;
    struct kn_app_state a = {0};
    struct seen_events ev;

    assert_int_equal(kn_store_app_seen(f->st, "deploy", "hello", "hello/app.kanaria.yaml", C1, ""),
                     0);
    assert_int_equal(kn_store_app_pruned(f->st, "deploy", "hello", "olga", "x", T_NOW_MS),
                     KN_EINVAL);
    assert_int_equal(kn_store_app_restore(f->st, "deploy", "hello", T_NOW_MS), 0);
    assert_int_equal(kn_store_app_orphan(f->st, "deploy", "nobody", "gone", T_NOW_MS),
                     KN_ENOTFOUND);
    assert_int_equal(kn_store_app_orphan(f->st, "deploy", "hello", "gone", T_NOW_MS + 1), 1);
    assert_int_equal(kn_store_app_orphan(f->st, "deploy", "hello", "gone", T_NOW_MS + 2), 0);
    assert_int_equal(
        kn_store_app_drift(f->st, "deploy", "hello", "no primary instance runs", T_NOW_MS + 3), 0);
    assert_int_equal(
        kn_store_app_pruned(f->st, "deploy", "hello", "olga", "pruned by olga", T_NOW_MS + 4), 0);
    kn_app_state_release(&a);
    assert_int_equal(kn_store_app_get(f->st, "deploy", "hello", &a), 0);
    assert_int_equal(a.orphaned_at, T_NOW_MS + 1);
    assert_int_equal(a.pruned_at, T_NOW_MS + 4);
    assert_string_equal(a.drift, "");
    assert_int_equal(kn_store_app_restore(f->st, "deploy", "hello", T_NOW_MS + 5), 1);
    kn_app_state_release(&a);
    assert_int_equal(kn_store_app_get(f->st, "deploy", "hello", &a), 0);
    assert_int_equal(a.orphaned_at, 0);
    assert_int_equal(a.pruned_at, 0);
    events_all(f->st, &ev);
    assert_int_equal(ev.n, 4);
    assert_string_equal(ev.e[0].type, "APP_ORPHANED");
    assert_string_equal(ev.e[0].message, "gone");
    assert_string_equal(ev.e[1].type, "DRIFT_DETECTED");
    assert_string_equal(ev.e[2].type, "APP_PRUNED");
    assert_string_equal(ev.e[2].actor, "olga");
    assert_string_equal(ev.e[3].type, "APP_RESTORED");

    /* an invalid folder does not move a known app away from the folder it runs from */
    assert_int_equal(kn_store_app_seen(f->st, "deploy", "hello", "evil/app.kanaria.yaml", C2,
                                       "evil/app.kanaria.yaml: app name 'hello' is also used"),
                     0);
    kn_app_state_release(&a);
    assert_int_equal(kn_store_app_get(f->st, "deploy", "hello", &a), 0);
    assert_string_equal(a.path, "hello/app.kanaria.yaml");
    assert_int_equal(kn_store_app_seen(f->st, "deploy", "hello", "moved/app.kanaria.yaml", C2, ""),
                     0);
    kn_app_state_release(&a);
    assert_int_equal(kn_store_app_get(f->st, "deploy", "hello", &a), 0);
    assert_string_equal(a.path, "moved/app.kanaria.yaml");
    kn_app_state_release(&a);
}

/* A commit is deployed once when new; a self-heal (or a person) deploys it again. */
static void test_redeploy_and_drift(void **state)
{
    struct fixture *f = *state;
    struct kn_deployment_new n = {.repo = "deploy", .app = "hello", .commit = C1,
                                  .strategy = "QUICK_SYNC"};
    struct kn_deployment d = {0};
    struct kn_app_state a = {0};
    struct seen_events ev;
    long long id = 0, again = 0;

    assert_int_equal(kn_store_app_seen(f->st, "deploy", "hello", "hello/app.kanaria.yaml", C1, ""),
                     0);
    assert_int_equal(kn_store_deployment_add(f->st, &n, T_NOW_MS, &id), 0);
    assert_int_equal(kn_store_deployment_set_status(f->st, id, KN_DEPLOY_RUNNING, NULL, T_NOW_MS),
                     0);
    assert_int_equal(kn_store_deployment_set_status(f->st, id, KN_DEPLOY_SUCCESS, NULL, T_NOW_MS),
                     0);
    assert_int_equal(kn_store_deployment_add(f->st, &n, T_NOW_MS, &again), KN_EEXISTS);
    n.trigger = "self-heal";
    assert_int_equal(kn_store_deployment_add(f->st, &n, T_NOW_MS + 1, &again), 0);
    assert_true(again > id);
    kn_deployment_release(&d);
    assert_int_equal(kn_store_deployment_get(f->st, id, &d), 0);
    assert_string_equal(d.trigger, "commit");
    kn_deployment_release(&d);
    assert_int_equal(kn_store_deployment_get(f->st, again, &d), 0);
    assert_string_equal(d.trigger, "self-heal");
    assert_string_equal(d.commit, C1);

    /* drift: an event on the way in and on the way out, none for the same drift again */
    assert_int_equal(kn_store_app_drift(f->st, "deploy", "hello", "no primary instance runs",
                                        T_NOW_MS + 10), 0);
    assert_int_equal(kn_store_app_drift(f->st, "deploy", "hello", "no primary instance runs",
                                        T_NOW_MS + 20), 0);
    kn_app_state_release(&a);
    assert_int_equal(kn_store_app_get(f->st, "deploy", "hello", &a), 0);
    assert_string_equal(a.drift, "no primary instance runs");
    assert_int_equal(a.drift_since, T_NOW_MS + 10);
    assert_int_equal(kn_store_app_drift(f->st, "deploy", "hello", "", T_NOW_MS + 30), 0);
    kn_app_state_release(&a);
    assert_int_equal(kn_store_app_get(f->st, "deploy", "hello", &a), 0);
    assert_string_equal(a.drift, "");
    assert_int_equal(a.drift_since, 0);
    events_all(f->st, &ev);
    assert_string_equal(ev.e[ev.n - 2].type, "DRIFT_DETECTED");
    assert_string_equal(ev.e[ev.n - 2].message, "no primary instance runs");
    assert_string_equal(ev.e[ev.n - 1].type, "DRIFT_RESOLVED");
    assert_int_equal(kn_store_app_drift(f->st, "deploy", "nobody", "x", T_NOW_MS), KN_ENOTFOUND);

    assert_int_equal(a.self_heal, 0);
    assert_int_equal(kn_store_app_set_self_heal(f->st, "deploy", "hello", 1), 0);
    assert_int_equal(kn_store_app_healed(f->st, "deploy", "hello", T_NOW_MS + 40), 0);
    kn_app_state_release(&a);
    assert_int_equal(kn_store_app_get(f->st, "deploy", "hello", &a), 0);
    assert_int_equal(a.self_heal, 1);
    assert_int_equal(a.healed_at, T_NOW_MS + 40);
    kn_deployment_release(&d);
    kn_app_state_release(&a);
}

static void test_approvals(void **state)
{
    struct fixture *f = *state;
    long long id = add(f->st, "web", C1, 1000);

    assert_string_equal(approvals_of(f->st, id, 2), "");
    assert_int_equal(kn_store_approval_add(f->st, id, 2, "alice", "APPROVE", 1100), 0);
    assert_int_equal(kn_store_approval_add(f->st, id, 2, "alice", "APPROVE", 1200), 0);
    assert_int_equal(kn_store_approval_add(f->st, id, 2, "bob", "APPROVE", 1300), 0);
    assert_int_equal(kn_store_approval_add(f->st, id, 2, "carol", "REJECT", 1300), 0);
    assert_int_equal(kn_store_approval_add(f->st, id, 3, "dave", "APPROVE", 1300), 0);
    assert_string_equal(approvals_of(f->st, id, 2),
                        "alice:APPROVE alice:APPROVE bob:APPROVE carol:REJECT ");
    assert_string_equal(approvals_of(f->st, id, 3), "dave:APPROVE ");
    assert_int_equal(kn_store_approval_add(f->st, id, 2, "", "APPROVE", 1), KN_EINVAL);

    assert_int_equal(kn_store_analysis_add(f->st, id, 1, "error-rate", "sum(rate(x[1m]))",
                                           "[0.01,0.02]", "< 0.05", "PASS", 1400),
                     0);
    assert_int_equal(sql_int(f->path,
                             "SELECT count(*) FROM analysis_records WHERE check_name = 'error-rate'"
                             " AND verdict = 'PASS' AND at = 1400"),
                     1);
}

/* A notification's saved values: per name and key, replaced on set, deleted with NULL, kept
 * across a reopen. */
static void test_notify_state(void **state)
{
    char *dir = kn_test_tmpdir();
    char *path = kn_asprintf("%s/kanaria.db", dir);
    struct kn_store *st = NULL;
    struct kn_error err;
    char *v = NULL;

    (void)state;
    assert_int_equal(kn_store_open(&st, path, &err), 0);
    assert_int_equal(kn_store_notify_get(st, "ops", "cursor", &v), KN_ENOTFOUND);
    assert_null(v);
    assert_int_equal(kn_store_notify_set(st, "ops", "cursor", "12"), 0);
    assert_int_equal(kn_store_notify_set(st, "ops", "cursor", "13"), 0);
    assert_int_equal(kn_store_notify_set(st, "pager", "cursor", "2"), 0);
    kn_store_close(st);
    st = NULL;
    assert_int_equal(kn_store_open(&st, path, &err), 0);
    assert_int_equal(kn_store_notify_get(st, "ops", "cursor", &v), 0);
    assert_string_equal(v, "13");
    free(v);
    assert_int_equal(kn_store_notify_get(st, "pager", "cursor", &v), 0);
    assert_string_equal(v, "2");
    free(v);
    assert_int_equal(kn_store_notify_set(st, "ops", "cursor", NULL), 0);
    assert_int_equal(kn_store_notify_get(st, "ops", "cursor", &v), KN_ENOTFOUND);
    kn_store_close(st);
    kn_test_rmtree(dir);
    free(path);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_names),
        cmocka_unit_test_setup_teardown(test_apps_carry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_checkpointed_off_the_loop, setup, teardown),
        cmocka_unit_test(test_migrations_from_zero),
        cmocka_unit_test(test_migration_keeps_rows),
        cmocka_unit_test(test_migration_from_2_keeps_apps),
        cmocka_unit_test(test_notify_state),
        cmocka_unit_test_setup_teardown(test_orphan_prune_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locked_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_released_waited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_table_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_killed_halfway, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_keeps_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repo_states, setup, teardown),
        cmocka_unit_test_setup_teardown(test_app_seen_upsert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deployment_add_planned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newest_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_running_not_superseded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_status_transitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deployments_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deployments_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_approvals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redeploy_and_drift, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
