/*
 * kanaria — calling kube-apiserver: one session per `kubernetes` platform, with its cluster and
 * user from a kubeconfig or the in-cluster files, a client-side rate limit, retries, the
 * apiserver's errors in its own words, discovery, and informers (list + watch).
 *
 * Credentials, as client-go reads them:
 *   - the kubeconfig: kn_kube_config.kubeconfig, else the first file of $KUBECONFIG, else the
 *     in-cluster files when KUBERNETES_SERVICE_HOST is set, else ~/.kube/config. The context is
 *     kn_kube_config.context, else current-context. Clusters: server, certificate-authority(-data),
 *     insecure-skip-tls-verify, tls-server-name. Users: token, tokenFile, client-certificate(-data)
 *     and client-key(-data), exec (client.authentication.k8s.io/v1 or v1beta1, run only with
 *     interactiveMode Never or IfAvailable, stdin closed, KUBERNETES_EXEC_INFO set; its
 *     ExecCredential's token or client certificate cached until expirationTimestamp, rerun once
 *     on a 401). A kubeconfig error is located (file:line:col) and names the key.
 *   - in cluster: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT (IPv6 bracketed), the
 *     token /var/run/secrets/kubernetes.io/serviceaccount/token re-read at least every minute
 *     (never kept for the process's life), ca.crt and namespace beside it. The directory can be
 *     moved for tests with KANARIA_KUBE_SA_DIR.
 *   - *-data values (base64 PEM) are written once, mode 0600, under the state directory given to
 *     kn_kube_new, because the HTTP client takes files; token files are read at each request.
 * No token, key or certificate ever reaches a log line, a message or an error.
 *
 * Every function runs on the loop thread.
 */
#ifndef KANARIA_PLATFORMS_KUBE_H
#define KANARIA_PLATFORMS_KUBE_H

#include <jansson.h>
#include <uv.h>

#include "kanaria/error.h"
#include "platforms/kubernetes/kubernetes.h"

struct kn_http_client;
struct kn_kube;

/*
 * A session for cfg (copied) on loop. The kubeconfig (or the in-cluster files) is read now:
 * KN_EINVAL / KN_ENOENT / KN_EPARSE with err located in the kubeconfig when it is missing,
 * malformed, or names a context, cluster or user that is not there. state_dir (created 0700 if
 * missing) holds the files made from *-data values. Nothing is sent until the first request.
 */
int kn_kube_new(struct kn_kube **out, uv_loop_t *loop, struct kn_http_client *http,
                const struct kn_kube_config *cfg, const char *state_dir, struct kn_error *err);
/* Requests and informers in flight end (callbacks run with KN_ECANCELLED), then free. NULL is
 * a no-op. */
void kn_kube_free(struct kn_kube *k);
/* "https://10.0.0.1:443", for messages. */
const char *kn_kube_server(const struct kn_kube *k);
/* The context's namespace, the pod's (in cluster), else "default". */
const char *kn_kube_namespace(const struct kn_kube *k);

/* ---- requests ------------------------------------------------------------------------------ */

/* The outcome of one request (after its retries). Everything is borrowed for the callback. */
struct kn_kube_result {
    int status;          /* 0 (2xx); KN_ENOTFOUND (404), KN_EEXISTS (409 AlreadyExists),
                            KN_EIO (any other refusal, 5xx, transport), KN_ETIMEDOUT,
                            KN_ECANCELLED, KN_EINVAL (credentials: an exec plugin failed, a
                            token file is missing), KN_EPARSE (a 2xx body that is not JSON) */
    int http_status;     /* of the last attempt; 0 without a response */
    const char *reason;  /* the Status object's reason ("NotFound", "Conflict", "Invalid",
                            "AlreadyExists", "Expired", "Forbidden"); NULL without one */
    const char *message; /* the apiserver's words as they are ("deployments.apps \"web\" not
                            found", "Apply failed with 1 conflict: ..."); for the plain-text 404
                            of an unknown resource type "the server has no resource at PATH (404
                            page not found)"; transport: "connection refused (GET URL)"; retried:
                            "... (3 attempts)". NULL on success */
    const json_t *reply; /* success: the body as JSON; NULL when it had none */
    const char *warning; /* the Warning header's text ("unknown field \"spec.replica\""), or NULL */
    int attempts;
};

typedef void (*kn_kube_cb)(const struct kn_kube_result *r, void *data);

struct kn_kube_call;

struct kn_kube_req {
    const char *method;       /* GET (NULL), PATCH, PUT, POST, DELETE */
    const char *path;         /* "/apis/apps/v1/namespaces/shop/deployments/web?dryRun=All":
                                 the path with its query, already encoded */
    const char *content_type; /* of body: "application/apply-patch+yaml" (server-side apply),
                                 "application/json", "application/merge-patch+json" */
    const json_t *body;       /* sent as compact JSON (valid YAML too); NULL: none */
    long long timeout_ms;     /* the whole request, waits for the rate limit and retries
                                 included; 0: 30 s */
};

/*
 * Send one request. It waits for the rate limit (qps, burst twice that), then is retried while
 * time is left: 429 and 5xx with a Retry-After header (that many seconds, at most 10 attempts as
 * client-go), a connection refused or reset (3 attempts, 0.2 s, 0.4 s), never another 4xx. A
 * 401 with an exec plugin reruns the plugin once. 0 and cb runs once later (never from inside
 * this call), or KN_EINVAL (no path) and it never runs. *out (may be NULL) is a handle for
 * kn_kube_cancel, valid until cb starts.
 */
int kn_kube_request(struct kn_kube_call **out, struct kn_kube *k, const struct kn_kube_req *req,
                    kn_kube_cb cb, void *data);
/* Stop a request: cb runs before this returns, with KN_ECANCELLED. NULL is a no-op. */
void kn_kube_cancel(struct kn_kube_call *c);

/* ---- discovery ----------------------------------------------------------------------------- */

/* A resource type as discovery tells it. */
struct kn_kube_gvr {
    char *api_version; /* "apps/v1", "v1" */
    char *kind;        /* "Deployment" */
    char *resource;    /* "deployments": the lowercase plural of the URL */
    int namespaced;
};

typedef void (*kn_kube_resolve_cb)(int status, const struct kn_kube_gvr *r, const char *message,
                                   void *data);

/*
 * The resource of (api_version, kind), from the legacy discovery documents (/api/v1,
 * /apis/GROUP/VERSION), kept per group version and fetched again after a plain-text 404 on a
 * path of that group version (kn_kube_forget). cb: 0 and r (borrowed); KN_ENOTFOUND and message
 * "the server has no kind HTTPRoute in gateway.networking.k8s.io/v1" when the group version or
 * the kind is absent (a CRD not installed); else the request's status and message. May call cb
 * before returning 0 when the answer is cached. 0, or KN_EINVAL and cb never runs.
 */
int kn_kube_resolve(struct kn_kube_call **out, struct kn_kube *k, const char *api_version,
                    const char *kind, long long timeout_ms, kn_kube_resolve_cb cb, void *data);
/* Drop what discovery knows of api_version (NULL: everything). */
void kn_kube_forget(struct kn_kube *k, const char *api_version);

/* The path of r's collection in ns (ns ignored for a cluster-scoped r), or of the object `name`
 * in it when name is not NULL: "/apis/apps/v1/namespaces/shop/deployments/web". Names are
 * percent-encoded. Caller frees. */
char *kn_kube_path(const struct kn_kube_gvr *r, const char *ns, const char *name);

/* ---- informers: list + watch --------------------------------------------------------------- */

/*
 * The objects of one resource type in one namespace (NULL: every namespace) that match a label
 * selector (NULL: all), kept current: a paged LIST (limit 500, continue), then a WATCH from the
 * list's resourceVersion with allowWatchBookmarks=true and timeoutSeconds of 300-600 s at
 * random. A watch that ends cleanly is resumed from the last resourceVersion seen (a bookmark's
 * too); a 410 (an HTTP 410, or an ERROR event with reason Expired or Gone) relists; a dropped
 * connection or an error reconnects after a backoff (0.5 s doubling to 30 s, reset once a watch
 * delivered an event). Never polls objects one by one.
 */
struct kn_kube_informer;

enum kn_kube_event {
    KN_KUBE_ADDED = 1,
    KN_KUBE_MODIFIED,
    KN_KUBE_DELETED,
    KN_KUBE_SYNCED, /* a list finished (obj NULL): the cache is complete from here */
    KN_KUBE_LOST,   /* listing or watching failed (obj NULL); kn_kube_informer_error says why;
                       the informer keeps trying */
};

/* Each change of the cache, after it is made; obj is borrowed for the call (for DELETED, the
 * last state). A relist sends what changed across it (DELETED for what is gone). */
typedef void (*kn_kube_event_cb)(enum kn_kube_event ev, const json_t *obj, void *data);

int kn_kube_informer_new(struct kn_kube_informer **out, struct kn_kube *k,
                         const struct kn_kube_gvr *r, const char *ns, const char *label_selector,
                         kn_kube_event_cb cb, void *data);
/* The object (namespace, name) as last seen, borrowed until the next event; NULL when absent. */
const json_t *kn_kube_informer_get(const struct kn_kube_informer *inf, const char *ns,
                                   const char *name);
/* Every object kept, in no order: calls fn for each (borrowed). */
void kn_kube_informer_each(const struct kn_kube_informer *inf,
                           void (*fn)(const json_t *obj, void *data), void *data);
/* 1 once a list completed (and the cache is whole), else 0. */
int kn_kube_informer_synced(const struct kn_kube_informer *inf);
/* Why the last list or watch failed, NULL when the last one worked. Borrowed. */
const char *kn_kube_informer_error(const struct kn_kube_informer *inf);
/* Stop watching and free (no callback after this). NULL is a no-op. */
void kn_kube_informer_free(struct kn_kube_informer *inf);

#endif /* KANARIA_PLATFORMS_KUBE_H */
