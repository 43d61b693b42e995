/*
 * Unit tests for controller/prune.c with the fake platform (tests/fakes/) behind the front end:
 * an orphan is removed from the platform and recorded pruned; a platform failure leaves it
 * orphaned, with a PRUNE_FAILED event; an app of the same name in another repository is another
 * app, so the prune asks the platform about (repository, app) and goes ahead.
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "fake_platform.h"
#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "prune.h"

#define RUN_BOUND_MS 5000

struct fixture {
    char *dir;
    uv_loop_t loop;
    struct kn_store *st;
    struct kn_platform *platforms[1];
    struct kn_fake_platform *fake;
    char removed_repo[64]; /* the repository of the last remove_app */
};

static void on_call(void *data, const struct kn_app_id *id, const char *line)
{
    struct fixture *f = data;

    (void)line;
    snprintf(f->removed_repo, sizeof(f->removed_repo), "%s", id->repository);
}

static int setup(void **state)
{
    struct fixture *f = kn_calloc(1, sizeof(*f));
    struct kn_platform_config pc = {
        .name = (char *)(uintptr_t) "local",
        .ptype = &kn_platform_fake,
    };
    struct kn_platform_deps deps = {.loop = &f->loop};
    char *path;
    struct kn_error err;

    f->dir = kn_test_tmpdir();
    path = kn_asprintf("%s/kanaria.db", f->dir);
    assert_int_equal(kn_store_open(&f->st, path, &err), 0);
    free(path);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(kn_platform_new(&f->platforms[0], &deps, &pc, &err), 0);
    f->fake = kn_fake_platform_last;
    f->fake->on_call = on_call;
    f->fake->data = f;
    assert_int_equal(kn_store_app_seen(f->st, "deploy", "old", "old/app.kanaria.yaml", "c1", ""),
                     0);
    assert_int_equal(kn_store_app_orphan(f->st, "deploy", "old", "gone", 1000), 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    kn_platform_free(f->platforms[0]);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    kn_store_close(f->st);
    kn_test_rmtree(f->dir);
    free(f->dir);
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

static void bound_hit(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* Run the loop until the prune is recorded (an event of type `type`), or RUN_BOUND_MS. */
static struct kn_event run_until(struct fixture *f, const char *type)
{
    uv_timer_t bound;
    struct kn_event e;

    uv_timer_init(&f->loop, &bound);
    uv_timer_start(&bound, bound_hit, RUN_BOUND_MS, 0);
    for (e = newest(f->st); strcmp(e.type, type) != 0 && uv_is_active((uv_handle_t *)&bound);
         e = newest(f->st)) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&bound, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return e;
}

static void test_pruned(void **state)
{
    struct fixture *f = *state;
    struct kn_app_state a;
    struct kn_event e;

    assert_int_equal(kn_prune_start(f->st, f->platforms, 1, "deploy", "old", "olga"), 0);
    e = run_until(f, "APP_PRUNED");
    assert_int_equal(f->fake->calls[KN_FAKE_REMOVE_APP], 1);
    assert_int_equal(kn_store_app_get(f->st, "deploy", "old", &a), 0);
    assert_true(a.pruned_at > 0);
    kn_app_state_release(&a);
    assert_string_equal(e.type, "APP_PRUNED");
    assert_string_equal(e.actor, "olga");
    assert_string_equal(e.message, "pruned by olga: removed from platform 'local'");
}

static void test_platform_fails(void **state)
{
    struct fixture *f = *state;
    struct kn_app_state a;
    struct kn_event e;

    f->fake->rule[KN_FAKE_REMOVE_APP] =
        (struct kn_fake_rule){.then = 'f', .message = "haproxy is not reachable"};
    assert_int_equal(kn_prune_start(f->st, f->platforms, 1, "deploy", "old", "kanaria"), 0);
    e = run_until(f, "PRUNE_FAILED");
    assert_int_equal(kn_store_app_get(f->st, "deploy", "old", &a), 0);
    assert_int_equal(a.pruned_at, 0);
    assert_true(a.orphaned_at > 0);
    kn_app_state_release(&a);
    assert_string_equal(e.type, "PRUNE_FAILED");
    assert_string_equal(e.message, "pruning failed, the app is still orphaned: platform 'local': "
                                   "haproxy is not reachable");
}

/* Platforms know apps by (repository, app): another repository's `old` is not this one, so the
 * prune goes ahead and asks the platform about deploy's `old` only. */
static void test_same_name_elsewhere(void **state)
{
    struct fixture *f = *state;
    struct kn_app_state a;
    struct kn_event e;

    assert_int_equal(kn_store_app_seen(f->st, "other", "old", "old/app.kanaria.yaml", "c2", ""),
                     0);
    assert_int_equal(kn_prune_start(f->st, f->platforms, 1, "deploy", "old", "olga"), 0);
    e = run_until(f, "APP_PRUNED");
    assert_int_equal(f->fake->calls[KN_FAKE_REMOVE_APP], 1);
    assert_string_equal(f->removed_repo, "deploy");
    assert_int_equal(kn_store_app_get(f->st, "deploy", "old", &a), 0);
    assert_true(a.pruned_at > 0);
    kn_app_state_release(&a);
    assert_int_equal(kn_store_app_get(f->st, "other", "old", &a), 0);
    assert_int_equal(a.pruned_at, 0);
    kn_app_state_release(&a);
    assert_string_equal(e.type, "APP_PRUNED");
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
