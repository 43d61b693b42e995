/*
 * Pruning: an orphaned app (its folder left the repository) is removed from every platform that
 * runs it — instances, and what routes traffic to it — when its last good config asks for it
 * (spec.prune) or an operator does (`kanaria prune APP`). The outcome is in the audit log: an
 * APP_PRUNED event (and the app's pruned_at), or PRUNE_FAILED with the platform's words, the
 * app then still orphaned and running as before.
 *
 * All functions run on the loop thread.
 */
#ifndef KANARIA_PRUNE_H
#define KANARIA_PRUNE_H

#include <stddef.h>

#include "kanaria/platform.h"
#include "kanaria/store.h"

/*
 * Remove `app` of `repo` from each of the n platforms (kn_platform_remove_app: a platform that
 * does not know it is done at once), on behalf of `actor` ("kanaria" or the operator's name).
 * Returns at once; the store is written when every platform has answered. Platforms know apps by
 * (repository, app): an app of the same name in another repository is not touched. The store and
 * the platforms are borrowed and must outlive the operation (a platform that is freed ends its
 * operations first). 0, or KN_EINVAL for missing arguments.
 */
int kn_prune_start(struct kn_store *st, struct kn_platform *const *platforms, size_t n,
                   const char *repo, const char *app, const char *actor);

#endif /* KANARIA_PRUNE_H */
