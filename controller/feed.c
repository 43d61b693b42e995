/*
 * The event feed: a cursor on the events table, polled on a timer. A poll reads the table only
 * when an event may have been written since the last read (kn_store_events_written: the store's
 * own inserts, or another connection's commit): an idle kanaria does not query its events table
 * every interval.
 */
#include "feed.h"

#include <stdlib.h>

#include "kanaria/alloc.h"
#include "kanaria/log.h"

#define WHO "feed"

/* Events read per query; a burst larger than this is read in several queries. */
#define KN_FEED_BATCH 200

struct kn_feed_sub {
    kn_feed_cb cb;
    void *data;
};

struct kn_feed {
    uv_timer_t timer;
    struct kn_store *store;
    long long interval_ms;
    long long cursor;
    long long written; /* kn_store_events_written at the last read */
    long long reads;   /* reads of the events table, since made */
    struct kn_feed_sub *subs;
    size_t nsubs;
    int closing;
};

static int kn_feed_hand_out(const struct kn_event *e, void *data)
{
    struct kn_feed *f = data;

    f->cursor = e->id;
    for (size_t i = 0; i < f->nsubs; i++) {
        f->subs[i].cb(e, f->subs[i].data);
    }
    return 0;
}

/* The number of events read by one query, into *n. */
struct kn_feed_batch {
    struct kn_feed *f;
    int n;
};

static int kn_feed_batch_one(const struct kn_event *e, void *data)
{
    struct kn_feed_batch *b = data;

    b->n++;
    return kn_feed_hand_out(e, b->f);
}

void kn_feed_poll(struct kn_feed *f)
{
    struct kn_feed_batch b = {.f = f};
    long long written = kn_store_events_written(f->store);

    if (f->closing || written == f->written) {
        return;
    }
    /* first: what a subscriber writes while it is handed an event is read at the next poll */
    f->written = written;
    do {
        b.n = 0;
        f->reads++;
        if (kn_store_events(f->store, f->cursor, KN_FEED_BATCH, kn_feed_batch_one, &b) < 0) {
            kn_log_warn(WHO, "cannot read the events after %lld; trying again", f->cursor);
            f->written = written - 1;
            break;
        }
    } while (b.n == KN_FEED_BATCH);
}

static void kn_feed_on_timer(uv_timer_t *t)
{
    struct kn_feed *f = t->data;

    kn_feed_poll(f);
    uv_timer_start(&f->timer, kn_feed_on_timer, (uint64_t)f->interval_ms, 0);
}

int kn_feed_new(struct kn_feed **out, uv_loop_t *loop, struct kn_store *store,
                long long interval_ms)
{
    struct kn_feed *f = kn_calloc(1, sizeof(*f));

    f->store = store;
    f->written = kn_store_events_written(store);
    f->interval_ms = interval_ms > 0 ? interval_ms : KN_FEED_INTERVAL_MS;
    if (kn_store_event_last_id(store, &f->cursor) < 0) {
        kn_log_warn(WHO, "cannot read the newest event id; starting from the beginning");
    }
    uv_timer_init(loop, &f->timer);
    f->timer.data = f;
    uv_timer_start(&f->timer, kn_feed_on_timer, (uint64_t)f->interval_ms, 0);
    *out = f;
    return 0;
}

void kn_feed_subscribe(struct kn_feed *f, kn_feed_cb cb, void *data)
{
    f->subs = kn_reallocarray(f->subs, f->nsubs + 1, sizeof(*f->subs));
    f->subs[f->nsubs].cb = cb;
    f->subs[f->nsubs].data = data;
    f->nsubs++;
}

void kn_feed_kick(struct kn_feed *f)
{
    if (f && !f->closing) {
        uv_timer_start(&f->timer, kn_feed_on_timer, 0, 0);
    }
}

long long kn_feed_reads(const struct kn_feed *f)
{
    return f->reads;
}

long long kn_feed_cursor(const struct kn_feed *f)
{
    return f->cursor;
}

static void kn_feed_closed(uv_handle_t *h)
{
    struct kn_feed *f = h->data;

    free(f->subs);
    free(f);
}

void kn_feed_close(struct kn_feed *f)
{
    if (!f || f->closing) {
        return;
    }
    f->closing = 1;
    uv_close((uv_handle_t *)&f->timer, kn_feed_closed);
}
