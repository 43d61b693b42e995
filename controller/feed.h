/*
 * The event feed: one cursor on the store's audit log that hands every new event, in order, to
 * its subscribers (notifications, the API's event stream). It polls the store every interval and
 * when kicked, and a poll reads the events table only when the store wrote an event since the
 * last read (kn_store_events_written); the cursor lives in memory and starts at the newest event
 * at creation, so events written before a restart are not handed out again (a stream client can
 * still ask for them with Last-Event-ID).
 *
 * All functions run on the loop thread.
 */
#ifndef KANARIA_FEED_H
#define KANARIA_FEED_H

#include <uv.h>

#include "kanaria/store.h"

/* How often the store is polled when nobody kicks the feed. */
#define KN_FEED_INTERVAL_MS 500

struct kn_feed;

/* e is borrowed for the call. */
typedef void (*kn_feed_cb)(const struct kn_event *e, void *data);

/* A feed on `store` (borrowed; outlives the feed), polling every interval_ms (0: the default). */
int kn_feed_new(struct kn_feed **out, uv_loop_t *loop, struct kn_store *store,
                long long interval_ms);

/* Add a subscriber; each event goes to the subscribers in the order they were added. */
void kn_feed_subscribe(struct kn_feed *f, kn_feed_cb cb, void *data);

/* Look at the store soon (something was just written). */
void kn_feed_kick(struct kn_feed *f);

/* The id of the last event handed out (or skipped at start). */
long long kn_feed_cursor(const struct kn_feed *f);

/* How many times the feed has read the events table since it was made. */
long long kn_feed_reads(const struct kn_feed *f);

/* Read what is new now and hand it out (also what the timer does). */
void kn_feed_poll(struct kn_feed *f);

/* Stop polling and close the timer; the feed is freed once it is closed. The loop must run for
 * that to finish. NULL is a no-op. */
void kn_feed_close(struct kn_feed *f);

#endif /* KANARIA_FEED_H */
