/*
 * Unit tests for controller/feed.c: a poll reads the events table only when the store wrote an
 * event since the last read, so an idle kanaria does not query its database every interval. An
 * event put in the table behind the store's back (a second SQLite connection: what no kanaria
 * process does, kanaria.lock keeps one serve per store) shows which polls read the table.
 */
#include "testutil.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "feed.h"
#include "kanaria/alloc.h"

struct seen {
    int n;
    char types[8][32];
};

static void on_event(const struct kn_event *e, void *data)
{
    struct seen *s = data;

    if (s->n < 8) {
        snprintf(s->types[s->n], sizeof(s->types[0]), "%s", e->type);
    }
    s->n++;
}

/* An event row written by another connection: the store does not count it. */
static void insert_behind(const char *db, const char *type)
{
    sqlite3 *c = NULL;
    char *sql = kn_asprintf("INSERT INTO events (at, type, repo, app, deployment, actor, message)"
                            " VALUES (1, '%s', 'r', 'a', 0, 'test', '')",
                            type);

    assert_int_equal(sqlite3_open(db, &c), SQLITE_OK);
    sqlite3_busy_timeout(c, 5000);
    assert_int_equal(sqlite3_exec(c, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(c);
    free(sql);
}

static void test_idle_poll_reads_nothing(void **state)
{
    char *dir = kn_test_tmpdir();
    char *db = kn_asprintf("%s/kanaria.db", dir);
    struct kn_store *st = NULL;
    struct kn_feed *f = NULL;
    struct kn_error err;
    struct seen seen = {0};
    uv_loop_t loop;

    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(kn_store_open(&st, db, &err), 0);
    assert_int_equal(kn_feed_new(&f, &loop, st, 0), 0);
    kn_feed_subscribe(f, on_event, &seen);

    /* nothing written: the poll does not read the table */
    kn_feed_poll(f);
    assert_int_equal(kn_feed_reads(f), 0);
    assert_int_equal(seen.n, 0);

    /* another connection's commit (sqlite3 by hand): read, and handed out */
    insert_behind(db, "BEHIND");
    kn_feed_poll(f);
    assert_int_equal(kn_feed_reads(f), 1);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.types[0], "BEHIND");
    kn_feed_poll(f);
    assert_int_equal(kn_feed_reads(f), 1);

    /* an event of the store: the next poll reads it, then nothing again */
    assert_int_equal(kn_store_event_add(st, "PLANNED", "r", "a", 0, "kanaria", "", 2), 0);
    kn_feed_poll(f);
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.types[1], "PLANNED");
    assert_int_equal(kn_feed_reads(f), 2);
    kn_feed_poll(f);
    kn_feed_poll(f);
    assert_int_equal(kn_feed_reads(f), 2);
    assert_int_equal(seen.n, 2);

    kn_feed_close(f);
    while (uv_run(&loop, UV_RUN_DEFAULT) != 0) {
    }
    assert_int_equal(uv_loop_close(&loop), 0);
    kn_store_close(st);
    kn_test_rmtree(dir);
    free(db);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_poll_reads_nothing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
