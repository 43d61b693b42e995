/*
 * kanaria — what kubeconfig.c, client.c and watch.c share behind kube.h. Private to
 * controller/platforms/kubernetes.
 *
 *   kubeconfig.c  the cluster and the user of a kubeconfig context or of the in-cluster files
 *                 (struct kn_kube_creds), and the exec plugin runner
 *   client.c      struct kn_kube: requests, rate limit, retries, discovery
 *   watch.c       informers, on kn_kube_stream
 */
#ifndef KANARIA_PLATFORMS_KUBE_INT_H
#define KANARIA_PLATFORMS_KUBE_INT_H

#include <time.h>
#include <uv.h>

#include "platforms/kubernetes/kube.h"

/* ---- credentials (kubeconfig.c) ------------------------------------------------------------ */

struct kn_kube_exec_run;

/* A user's exec plugin and the credential it last printed. */
struct kn_kube_exec {
    char *api_version; /* client.authentication.k8s.io/v1 or v1beta1 */
    char *command;
    char **args;        /* NULL-terminated */
    char **env;         /* NULL-terminated "NAME=value" */
    char *cluster_info; /* provideClusterInfo: spec.cluster as JSON, else NULL */
    char *install_hint; /* NULL when none */
    char *dir;          /* the kubeconfig's folder: a relative command path starts there */
    char *state_dir;    /* where a client certificate it prints is written */
    /* the cached credential: token (a secret, wiped when dropped) or cert_file + key_file */
    char *token;
    char *cert_file;
    char *key_file;
    int have;                     /* a credential is cached */
    time_t expires;               /* 0: never */
    struct kn_kube_exec_run *run; /* the run under way, else NULL */
};

/* Where the session's credentials come from. Every string owned. */
struct kn_kube_creds {
    char *server;     /* "https://10.0.0.1:443", no trailing slash */
    char *namespace_; /* never NULL */
    char *source;     /* "kubeconfig /home/a/.kube/config, context kind" / "in-cluster files" */
    char *ca_file;    /* NULL: the system's CAs */
    char *cert_file;  /* client certificate and key, or NULL */
    char *key_file;
    char *token_file; /* bearer token file read at each request (tokenFile, in cluster) */
    char *token;      /* an inline token (secret) */
    struct kn_kube_exec *exec;
};

/* Read the kubeconfig cfg names (see kube.h) into c; *-data values go to files under state_dir
 * (which exists). 0, or KN_ENOENT / KN_EPARSE / KN_EINVAL / KN_EUNSUPPORTED with err located. */
int kn_kube_creds_load(struct kn_kube_creds *c, const struct kn_kube_config *cfg,
                       const char *state_dir, struct kn_error *err);
/* Free everything c holds, wiping the secrets; an exec run under way is killed. */
void kn_kube_creds_release(struct kn_kube_creds *c);

/* 1 when the exec plugin's cached credential can be used now. */
int kn_kube_exec_valid(const struct kn_kube_exec *x);
/* Forget the cached credential (a 401). */
void kn_kube_exec_drop(struct kn_kube_exec *x);

typedef void (*kn_kube_exec_cb)(int status, const char *message, void *data);
/* Run the plugin on loop (stdin closed, KUBERNETES_EXEC_INFO set, output bounded, a timeout):
 * cb(0, NULL) once its credential is cached, else cb(KN_EINVAL, why). One run at a time: 0 and
 * cb runs later; KN_EINVAL when a run is under way or cannot start (cb never runs then, message
 * in err). */
int kn_kube_exec_start(struct kn_kube_exec *x, uv_loop_t *loop, kn_kube_exec_cb cb, void *data,
                       struct kn_error *err);

/* Write len bytes to dir/name, mode 0600 (replacing it). 0 or KN_EIO with err. */
int kn_kube_write_private(const char *dir, const char *name, const void *data, size_t len,
                          char **path_out, struct kn_error *err);

/* ---- requests (client.c) -------------------------------------------------------------------- */

/* A streamed request (a watch): pieces of a 2xx body go to on_data (return non-zero to stop);
 * the completion then comes through the request's kn_kube_cb with reply NULL. No retries, no
 * overall timeout: cancel it. An error status's body is kept and parsed as for any request. */
typedef int (*kn_kube_data_cb)(const char *piece, size_t len, void *data);
int kn_kube_stream(struct kn_kube_call **out, struct kn_kube *k, const char *path,
                   kn_kube_data_cb on_data, kn_kube_cb cb, void *data);

uv_loop_t *kn_kube_loop(const struct kn_kube *k);

/* Informers register with their session so that kn_kube_free stops them. */
struct kn_kube_informer;
void kn_kube_add_informer(struct kn_kube *k, struct kn_kube_informer *inf);
void kn_kube_remove_informer(struct kn_kube *k, struct kn_kube_informer *inf);
/* Called by kn_kube_free: stop (no callback after this) and forget k. */
void kn_kube_informer_detach(struct kn_kube_informer *inf);

/* "v1" -> "/api/v1", "apps/v1" -> "/apis/apps/v1" (caller frees). */
char *kn_kube_gv_path(const char *api_version);
/* Percent-encode s for a path segment or a query value (caller frees). */
char *kn_kube_escape(const char *s);

#endif /* KANARIA_PLATFORMS_KUBE_INT_H */
