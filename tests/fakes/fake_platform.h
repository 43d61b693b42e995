/*
 * The fake platform provider (type `fake`), for tests: it implements the provider contract
 * (include/kanaria/plugin/platform.h) with no process and no HAProxy. Each call is answered on a
 * timer as a test scripts it (succeed, fail, hang until cancelled), and every call is recorded.
 *
 * It is registered in kn_platform_types[] only in the test binaries that link it (a weak
 * reference in controller/platforms/registry.c): serve, config, manifests, stages, drift and the
 * CLI needed no edit to take it.
 */
#ifndef KANARIA_TESTS_FAKE_PLATFORM_H
#define KANARIA_TESTS_FAKE_PLATFORM_H

#include <uv.h>

#include "kanaria/platform.h"
#include "kanaria/plugin/platform.h"

extern const struct kn_platform_type kn_platform_fake;
/* Its operations, for a test's own descriptor with fewer capabilities. */
extern const struct kn_platform_provider_ops kn_fake_platform_ops;

enum kn_fake_op {
    KN_FAKE_APPLY = 0,
    KN_FAKE_REMOVE,
    KN_FAKE_WEIGHTS,
    KN_FAKE_REMOVE_APP,
    KN_FAKE_OPS,
};

/* How the fake answers the calls of one kind: script[n] for the n-th call ('o' succeed, 'f' fail
 * with `message`, 'h' hang: never end until cancelled), then `then` for every later call ('o'
 * when 0), each after delay_ms (0: 1 ms). */
struct kn_fake_rule {
    const char *script;
    char then;
    const char *message;
    int delay_ms;
};

struct kn_fake_call;

struct kn_fake_platform {
    uv_loop_t *loop;
    char *name;
    struct kn_fake_rule rule[KN_FAKE_OPS];
    int calls[KN_FAKE_OPS];
    int failures;  /* failed completions */
    int completed; /* successful completions */
    int cancels;   /* cancel calls from the front end */
    char cancelled[128];           /* the line of the last call a cancel ended */
    long long apply_ready_timeout_ms; /* ready_timeout_ms of the last apply */
    long long apply_time_left_ms;     /* kn_platform_call_time_left at the last apply */
    char last_token[80];           /* kn_platform_call_token of the last call */
    int active;     /* calls started and not ended */
    int max_active; /* the most at once */
    struct kn_fake_call *calls_in_flight;
    /* Each start says `say` twice as progress (NULL: nothing); an apply reads the memo
     * `memo_key` into memo_read (caller frees; NULL: none) and then sets it to memo_value. */
    const char *say;
    const char *memo_key;
    const char *memo_value;
    char *memo_read;
    struct kn_fake_world *world; /* kn_fake_world when it was made; NULL: no model */
    int destroying;
    /* observe: what it answers (0 and live, or KN_ENOTFOUND); on_observe (NULL: none) runs as
     * an observe starts, before the answer (what changes while it is under way) */
    int observe_status;
    void (*on_observe)(void *data, const struct kn_app_id *id);
    struct kn_live_state live;
    /* Every call as it starts (line such as "apply canary 2222222 v2"), and every end. */
    void (*on_call)(void *data, const struct kn_app_id *id, const char *line);
    void (*on_done)(void *data, const struct kn_app_id *id, const char *line, int status);
    /* The delay of each call that ends on a timer, when set and > 0 (else its rule's delay_ms):
     * many apps whose operations take different times. */
    int (*delay_ms)(void *data, const struct kn_app_id *id, const char *line);
    void *data;
};

/* The instance the last create made (tests reach their fake through it). */
extern struct kn_fake_platform *kn_fake_platform_last;

/*
 * What the fake "runs", for tests that hold it to the provider contract (tests/conformance/):
 * per app (repository, app), the instances and the traffic split as the platform has them. It
 * lives outside the instances, as a cloud outlives its controller: an instance dropped in the
 * middle of an apply leaves what that apply started (`starting`), and the next instance made
 * while kn_fake_world points at the same world stops it, as the local platform does with what
 * an unfinished operation started. When kn_fake_world is NULL (the default) the fake models
 * nothing and observe answers `live`.
 */
struct kn_fake_app {
    struct kn_fake_app *next;
    char *repository;
    char *app;
    int starting[KN_VARIANT_COUNT]; /* started by an apply that has not ended */
    int running[KN_VARIANT_COUNT];  /* ready */
    double weight[KN_VARIANT_COUNT]; /* percent of the traffic, as the platform routes it */
    char commit[KN_VARIANT_COUNT][41];
};

struct kn_fake_world {
    struct kn_fake_app *apps;
    int settled; /* instances left by an unfinished apply that a new instance stopped */
};

/* The world the next create attaches to (the test owns it); NULL: none. */
extern struct kn_fake_world *kn_fake_world;

/* The app of a world (made empty when create is set and it is absent; else NULL). */
struct kn_fake_app *kn_fake_world_app(struct kn_fake_world *w, const struct kn_app_id *id,
                                      int create);
/* Free what a world holds (not the struct). */
void kn_fake_world_release(struct kn_fake_world *w);

struct kn_deployment;
struct kn_engine_load;

/* The engine's deps.load over commits written as folders (DIR/src/COMMIT/...), on the thread
 * pool: the deployment's app, and the last good one when it loads without errors. For the
 * tests and the bench that run the engine on the fake platform. */
void kn_fake_load(const char *dir, const struct kn_deployment *d, const char *path,
                  const char *last_good, struct kn_engine_load *out);

#endif /* KANARIA_TESTS_FAKE_PLATFORM_H */
