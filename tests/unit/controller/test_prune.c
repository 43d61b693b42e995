/*
 * Unit tests for controller/prune.c with a fake platform: an orphan is removed from the platform
 * that runs it and recorded pruned; a platform failure or an app of the same name in another
 * repository leaves it orphaned, with a PRUNE_FAILED event, and the latter touches nothing.
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "prune.h"

struct fake {
    struct kn_platform base;
    int runs;      /* live() knows the app */
    int fail;      /* remove_app answers an error */
    int removed;   /* remove_app calls */
};

static int fake_live(struct kn_platform *p, const char *app, struct kn_live_state *out)
{
    (void)app;
    memset(out, 0, sizeof(*out));
    return ((struct fake *)p)->runs ? 0 : KN_ENOTFOUND;
}

static int fake_remove_app(struct kn_platform *p, const char *app, kn_platform_cb cb, void *data)
{
    struct fake *f = (struct fake *)p;

    (void)app;
    f->removed++;
    cb(f->fail ? KN_EIO : 0, f->fail ? "haproxy is not reachable" : NULL, data);
    return 0;
}

static const struct kn_platform_ops fake_ops = {
    .live = fake_live,
    .remove_app = fake_remove_app,
};

struct fixture {
    char *dir;
    struct kn_store *st;
    struct fake fake;
    struct kn_platform *platforms[1];
};

static int setup(void **state)
{
    struct fixture *f = kn_calloc(1, sizeof(*f));
    char *path;
    struct kn_error err;

    f->dir = kn_test_tmpdir();
    path = kn_asprintf("%s/kanaria.db", f->dir);
    assert_int_equal(kn_store_open(&f->st, path, &err), 0);
    free(path);
    f->fake.base.ops = &fake_ops;
    f->fake.base.name = kn_strdup("local");
    f->fake.runs = 1;
    f->platforms[0] = &f->fake.base;
    assert_int_equal(kn_store_app_seen(f->st, "deploy", "old", "old/app.kanaria.yaml", "c1", ""),
                     0);
    assert_int_equal(kn_store_app_orphan(f->st, "deploy", "old", "gone", 1000), 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    kn_store_close(f->st);
    kn_test_rmtree(f->dir);
    free(f->dir);
    free(f->fake.base.name);
    free(f);
    return 0;
}

/* The event; its message points into a static buffer, valid until the next call. */
static int last_event(const struct kn_event *e, void *data)
{
    static char message[4096];

    *(struct kn_event *)data = *e;
    snprintf(message, sizeof(message), "%s", e->message);
    ((struct kn_event *)data)->message = message;
    return 0;
}

static struct kn_event newest(struct kn_store *st)
{
    struct kn_event e;

    memset(&e, 0, sizeof(e));
    assert_int_equal(kn_store_events(st, 0, 0, last_event, &e), 0);
    return e;
}

static void test_pruned(void **state)
{
    struct fixture *f = *state;
    struct kn_app_state a;
    struct kn_event e;

    assert_int_equal(kn_prune_start(f->st, f->platforms, 1, "deploy", "old", "olga"), 0);
    assert_int_equal(f->fake.removed, 1);
    assert_int_equal(kn_store_app_get(f->st, "deploy", "old", &a), 0);
    assert_true(a.pruned_at > 0);
    kn_app_state_release(&a);
    e = newest(f->st);
    assert_string_equal(e.type, "APP_PRUNED");
    assert_string_equal(e.actor, "olga");
    assert_string_equal(e.message, "pruned by olga: removed from platform 'local' (instances, "
                                   "frontend and backend)");
}

static void test_platform_fails(void **state)
{
    struct fixture *f = *state;
    struct kn_app_state a;
    struct kn_event e;

    f->fake.fail = 1;
    assert_int_equal(kn_prune_start(f->st, f->platforms, 1, "deploy", "old", "kanaria"), 0);
    assert_int_equal(kn_store_app_get(f->st, "deploy", "old", &a), 0);
    assert_int_equal(a.pruned_at, 0);
    assert_true(a.orphaned_at > 0);
    kn_app_state_release(&a);
    e = newest(f->st);
    assert_string_equal(e.type, "PRUNE_FAILED");
    assert_string_equal(e.message, "pruning failed, the app is still orphaned: haproxy is not "
                                   "reachable");
}

static void test_same_name_elsewhere(void **state)
{
    struct fixture *f = *state;
    struct kn_app_state a;
    struct kn_event e;

    assert_int_equal(kn_store_app_seen(f->st, "other", "old", "old/app.kanaria.yaml", "c2", ""),
                     0);
    assert_int_equal(kn_prune_start(f->st, f->platforms, 1, "deploy", "old", "olga"), 0);
    assert_int_equal(f->fake.removed, 0);
    assert_int_equal(kn_store_app_get(f->st, "deploy", "old", &a), 0);
    assert_int_equal(a.pruned_at, 0);
    kn_app_state_release(&a);
    e = newest(f->st);
    assert_string_equal(e.type, "PRUNE_FAILED");
    assert_non_null(strstr(e.message, "repository 'other' also declares an app named 'old'"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pruned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_platform_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_name_elsewhere, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
