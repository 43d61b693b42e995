/*
 * kanaria — leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection
 * does it: the leader renews every retryPeriod and gives up when it could not renew within
 * renewDeadline; another instance takes the Lease once it has seen no change of it for
 * leaseDuration (judged by the local time the record last changed, never by renewTime, so clock
 * skew does not matter), by a PUT with the resourceVersion it read (a 409 loses the race). The
 * identity is "<hostname>_<random hex>". Released on free (holder emptied, leaseDurationSeconds
 * 1), so that a stopping leader hands over at once. leaseDurationSeconds is written rounded up
 * to whole seconds (1.5 s: 2), never shorter than configured.
 */
#ifndef KANARIA_PLATFORMS_KUBE_LEASE_H
#define KANARIA_PLATFORMS_KUBE_LEASE_H

#include "kanaria/platform.h"
#include "platforms/kubernetes/kube.h"

struct kn_kube_lease;

/* Campaign for cfg's Lease (copied) through k, with timers on loop (k's): cb(1, NULL) once this
 * instance holds it, then cb(0, why) once it lost it (no more calls after that). While another
 * instance holds it, logs "waiting for the lead of Lease NS/NAME (held by X)" once per holder.
 * Never calls cb from inside this call. 0, or KN_EINVAL. */
int kn_kube_lease_start(struct kn_kube_lease **out, uv_loop_t *loop, struct kn_kube *k,
                        const struct kn_kube_leader_config *cfg, kn_platform_lead_cb cb,
                        void *data);
/* The holder's identity ("host_3f2a9c01"), for messages and tests. */
const char *kn_kube_lease_identity(const struct kn_kube_lease *l);
/* Stop; release the Lease when held (best effort, bounded by 2 s on the loop); no callback
 * after this. The release is a request on k, so free k only once the loop ran it out (freeing k
 * sooner cancels it: the Lease then expires after leaseDuration). NULL is a no-op. */
void kn_kube_lease_free(struct kn_kube_lease *l);

#endif /* KANARIA_PLATFORMS_KUBE_LEASE_H */
