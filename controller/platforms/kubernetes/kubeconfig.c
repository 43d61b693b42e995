/*
 * kanaria — the cluster and the user of a kubeconfig context, or of the in-cluster files, and
 * the exec credential plugins (see kube.h for the rules, kube_int.h for the functions).
 */
#define _GNU_SOURCE /* timegm */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "kanaria/alloc.h"
#include "kanaria/manifest.h"
#include "kanaria/secret.h"
#include "platforms/kubernetes/kube_int.h"

#define KN_KUBE_SA_DIR          "/var/run/secrets/kubernetes.io/serviceaccount"
#define KN_KUBE_EXEC_TIMEOUT_MS 30000
#define KN_KUBE_EXEC_MAX_OUT    ((size_t)1 << 20)
#define KN_KUBE_EXEC_MAX_ERR    ((size_t)4096)

extern char **environ;

/* ---- small helpers ------------------------------------------------------------------------ */

static void kn_kube_free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++) {
        free(v[i]);
    }
    free(v);
}

static char *kn_kube_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        return kn_strdup(".");
    }
    if (slash == path) {
        return kn_strdup("/");
    }
    return kn_strndup(path, (size_t)(slash - path));
}

/* A path from the kubeconfig: relative ones are relative to its folder (as client-go). */
static char *kn_kube_resolve_path(const char *dir, const char *p)
{
    if (p[0] == '/' || !dir) {
        return kn_strdup(p);
    }
    return kn_asprintf("%s/%s", dir, p);
}

int kn_kube_write_private(const char *dir, const char *name, const void *data, size_t len,
                          char **path_out, struct kn_error *err)
{
    char *path = kn_asprintf("%s/%s", dir, name);
    const char *p = data;
    int fd = -1;
    int rc = 0;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || fchmod(fd, 0600) != 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot write '%s': %s", path, strerror(errno));
        goto out;
    }
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            rc = kn_error_set(err, KN_EIO, NULL, "cannot write '%s': %s", path, strerror(errno));
            goto out;
        }
        p += n;
        len -= (size_t)n;
    }
out:
    if (fd >= 0 && close(fd) != 0 && rc == 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot write '%s': %s", path, strerror(errno));
    }
    if (rc < 0) {
        free(path);
        path = NULL;
    }
    if (path_out) {
        *path_out = path;
    } else {
        free(path);
    }
    return rc;
}

/* A *-data value (base64, white space allowed) decoded with OpenSSL into dir/name (0600). */
static int kn_kube_write_b64(const struct kn_node *n, const char *key, const char *dir,
                             const char *name, char **path_out, struct kn_error *err)
{
    size_t len = n->len;
    char *clean = kn_malloc(len + 1);
    unsigned char *raw = NULL;
    size_t clen = 0;
    int rc = 0;
    int dlen;

    for (size_t i = 0; i < len; i++) {
        char ch = n->scalar[i];
        if (ch != ' ' && ch != '\n' && ch != '\r' && ch != '\t') {
            clean[clen++] = ch;
        }
    }
    clean[clen] = '\0';
    if (clen == 0 || clen % 4 != 0 || clen > INT_MAX) {
        rc = kn_error_set(err, KN_EPARSE, &n->loc, "'%s' is not base64", key);
        goto out;
    }
    raw = kn_malloc(clen / 4 * 3 + 1);
    dlen = EVP_DecodeBlock(raw, (const unsigned char *)clean, (int)clen);
    if (dlen < 0) {
        rc = kn_error_set(err, KN_EPARSE, &n->loc, "'%s' is not base64", key);
        goto out;
    }
    /* EVP_DecodeBlock counts the padding as data */
    if (clean[clen - 1] == '=') {
        dlen--;
        if (clean[clen - 2] == '=') {
            dlen--;
        }
    }
    rc = kn_kube_write_private(dir, name, raw, (size_t)dlen, path_out, err);
out:
    OPENSSL_cleanse(clean, clen);
    free(clean);
    if (raw) {
        OPENSSL_cleanse(raw, clen / 4 * 3 + 1);
        free(raw);
    }
    return rc;
}

/* ---- reading the YAML ---------------------------------------------------------------------- */

/* A string value of map's key: NULL when absent; an error when not a string. */
static int kn_kube_str(const struct kn_node *map, const char *key, const struct kn_node **out,
                       struct kn_error *err)
{
    const struct kn_node *n = kn_node_get(map, key);

    *out = NULL;
    if (!n || (n->type == KN_NODE_SCALAR && kn_node_scalar_kind(n) == KN_SCALAR_NULL)) {
        return 0;
    }
    if (n->type != KN_NODE_SCALAR) {
        return kn_error_set(err, KN_EPARSE, &n->loc, "'%s' must be a string, got %s", key,
                            kn_node_describe(n));
    }
    *out = n;
    return 0;
}

static int kn_kube_bool(const struct kn_node *map, const char *key, int *out, struct kn_error *err)
{
    const struct kn_node *n = kn_node_get(map, key);

    *out = 0;
    if (!n) {
        return 0;
    }
    if (n->type != KN_NODE_SCALAR || kn_node_scalar_kind(n) != KN_SCALAR_BOOL) {
        return kn_error_set(err, KN_EPARSE, &n->loc, "'%s' must be true or false, got %s", key,
                            kn_node_describe(n));
    }
    *out = n->scalar[0] == 't' || n->scalar[0] == 'T';
    return 0;
}

/* The entry `name` of a list of {name, <field>: {...}} (clusters, users, contexts). */
static int kn_kube_named(const struct kn_node *root, const char *list, const char *field,
                         const char *name, const struct kn_loc *where, const struct kn_node **out,
                         struct kn_error *err)
{
    const struct kn_node *seq = kn_node_get(root, list);
    struct kn_buf names;
    int rc = 0;

    *out = NULL;
    kn_buf_init(&names, 1024);
    if (seq && seq->type != KN_NODE_SEQ &&
        !(seq->type == KN_NODE_SCALAR && kn_node_scalar_kind(seq) == KN_SCALAR_NULL)) {
        rc = kn_error_set(err, KN_EPARSE, &seq->loc, "'%s' must be a list, got %s", list,
                          kn_node_describe(seq));
        goto out;
    }
    for (size_t i = 0; seq && seq->type == KN_NODE_SEQ && i < seq->len; i++) {
        const struct kn_node *item = seq->items[i];
        const struct kn_node *n = NULL;
        if (item->type != KN_NODE_MAP) {
            rc = kn_error_set(err, KN_EPARSE, &item->loc, "%s[%zu] must be a map, got %s", list, i,
                              kn_node_describe(item));
            goto out;
        }
        if ((rc = kn_kube_str(item, "name", &n, err)) < 0) {
            goto out;
        }
        if (!n) {
            rc = kn_error_set(err, KN_EPARSE, &item->loc, "%s[%zu] has no 'name'", list, i);
            goto out;
        }
        if (strcmp(n->scalar, name) == 0) {
            const struct kn_node *v = kn_node_get(item, field);
            if (!v || v->type != KN_NODE_MAP) {
                rc = kn_error_set(err, KN_EPARSE, v ? &v->loc : &item->loc,
                                  "%s '%s' has no '%s' map", list, name, field);
                goto out;
            }
            *out = v;
            goto out;
        }
        kn_buf_addf(&names, "%s%s", names.len ? ", " : "", n->scalar);
    }
    rc = kn_error_set(err, KN_EINVAL, where, "no %.*s '%s' in the kubeconfig (%s: %s)",
                      (int)strlen(list) - 1, list, name, list, names.len ? names.data : "none");
out:
    kn_buf_release(&names);
    return rc;
}

/* Keys kanaria cannot honour: refused rather than ignored. */
static int kn_kube_refuse(const struct kn_node *map, const char *key, const char *why,
                          struct kn_error *err)
{
    const struct kn_pair *p = kn_node_get_pair(map, key);
    if (!p || (p->value->type == KN_NODE_SCALAR &&
               (kn_node_scalar_kind(p->value) == KN_SCALAR_NULL ||
                (kn_node_scalar_kind(p->value) == KN_SCALAR_BOOL &&
                 (p->value->scalar[0] == 'f' || p->value->scalar[0] == 'F')) ||
                p->value->len == 0))) {
        return 0;
    }
    return kn_error_set(err, KN_EUNSUPPORTED, &p->key->loc, "'%s' is not supported: %s", key, why);
}

static int kn_kube_load_cluster(struct kn_kube_creds *c, const struct kn_node *cl, const char *dir,
                                const char *state_dir, json_t *info, struct kn_error *err)
{
    const struct kn_node *server = NULL, *ca = NULL, *cad = NULL;
    int rc = 0;

    if ((rc = kn_kube_str(cl, "server", &server, err)) < 0 ||
        (rc = kn_kube_str(cl, "certificate-authority", &ca, err)) < 0 ||
        (rc = kn_kube_str(cl, "certificate-authority-data", &cad, err)) < 0) {
        goto out;
    }
    if (!server || (strncmp(server->scalar, "https://", 8) != 0 &&
                    strncmp(server->scalar, "http://", 7) != 0)) {
        rc = kn_error_set(err, KN_EPARSE, server ? &server->loc : &cl->loc,
                          server ? "'server' must be an http:// or https:// URL"
                                 : "the cluster has no 'server'");
        goto out;
    }
    if ((rc = kn_kube_refuse(cl, "insecure-skip-tls-verify",
                             "kanaria's HTTP client always verifies the server's certificate; "
                             "give certificate-authority(-data) instead",
                             err)) < 0 ||
        (rc = kn_kube_refuse(cl, "tls-server-name",
                             "kanaria's HTTP client checks the certificate against the host of "
                             "'server'; use a server URL whose host the certificate names",
                             err)) < 0 ||
        (rc = kn_kube_refuse(cl, "proxy-url", "kanaria connects to the server directly", err)) <
            0) {
        goto out;
    }
    c->server = kn_strdup(server->scalar);
    while (strlen(c->server) > 8 && c->server[strlen(c->server) - 1] == '/') {
        c->server[strlen(c->server) - 1] = '\0';
    }
    json_object_set_new(info, "server", json_string(c->server));
    if (cad) {
        if ((rc = kn_kube_write_b64(cad, "certificate-authority-data", state_dir, "ca.crt",
                                    &c->ca_file, err)) < 0) {
            goto out;
        }
        json_object_set_new(info, "certificate-authority-data", json_string(cad->scalar));
    } else if (ca) {
        c->ca_file = kn_kube_resolve_path(dir, ca->scalar);
    }
out:
    return rc;
}

static int kn_kube_load_exec(struct kn_kube_creds *c, const struct kn_node *ex, const char *dir,
                             const char *state_dir, json_t *info, struct kn_error *err)
{
    const struct kn_node *api = NULL, *cmd = NULL, *mode = NULL, *hint = NULL;
    const struct kn_node *args = kn_node_get(ex, "args");
    const struct kn_node *env = kn_node_get(ex, "env");
    struct kn_kube_exec *x = NULL;
    int provide = 0;
    int rc = 0;

    if (ex->type != KN_NODE_MAP) {
        rc = kn_error_set(err, KN_EPARSE, &ex->loc, "'exec' must be a map, got %s",
                          kn_node_describe(ex));
        goto out;
    }
    if ((rc = kn_kube_str(ex, "apiVersion", &api, err)) < 0 ||
        (rc = kn_kube_str(ex, "command", &cmd, err)) < 0 ||
        (rc = kn_kube_str(ex, "interactiveMode", &mode, err)) < 0 ||
        (rc = kn_kube_str(ex, "installHint", &hint, err)) < 0 ||
        (rc = kn_kube_bool(ex, "provideClusterInfo", &provide, err)) < 0) {
        goto out;
    }
    if (!api || (strcmp(api->scalar, "client.authentication.k8s.io/v1") != 0 &&
                 strcmp(api->scalar, "client.authentication.k8s.io/v1beta1") != 0)) {
        rc = kn_error_set(err, KN_EPARSE, api ? &api->loc : &ex->loc,
                          "exec 'apiVersion' must be client.authentication.k8s.io/v1 or "
                          "client.authentication.k8s.io/v1beta1%s%s",
                          api ? ", got " : "", api ? api->scalar : "");
        goto out;
    }
    if (!cmd || cmd->len == 0) {
        rc = kn_error_set(err, KN_EPARSE, &ex->loc, "exec has no 'command'");
        goto out;
    }
    if (!mode && strcmp(api->scalar, "client.authentication.k8s.io/v1") == 0) {
        rc = kn_error_set(err, KN_EPARSE, &ex->loc,
                          "exec 'interactiveMode' is required with "
                          "client.authentication.k8s.io/v1 (Never or IfAvailable)");
        goto out;
    }
    if (mode && strcmp(mode->scalar, "Never") != 0 && strcmp(mode->scalar, "IfAvailable") != 0) {
        rc = kn_error_set(err, KN_EUNSUPPORTED, &mode->loc,
                          "exec 'interactiveMode' must be Never or IfAvailable (kanaria runs "
                          "plugins without a terminal), got '%s'",
                          mode->scalar);
        goto out;
    }
    x = kn_calloc(1, sizeof(*x));
    x->api_version = kn_strdup(api->scalar);
    x->command =
        strchr(cmd->scalar, '/') ? kn_kube_resolve_path(dir, cmd->scalar) : kn_strdup(cmd->scalar);
    x->install_hint = hint ? kn_strdup(hint->scalar) : NULL;
    x->dir = dir ? kn_strdup(dir) : NULL;
    x->state_dir = kn_strdup(state_dir);
    x->args = kn_calloc(2 + (args && args->type == KN_NODE_SEQ ? args->len : 0), sizeof(char *));
    x->args[0] = kn_strdup(x->command);
    if (args && !(args->type == KN_NODE_SCALAR && kn_node_scalar_kind(args) == KN_SCALAR_NULL)) {
        if (args->type != KN_NODE_SEQ) {
            rc = kn_error_set(err, KN_EPARSE, &args->loc, "exec 'args' must be a list, got %s",
                              kn_node_describe(args));
            goto out;
        }
        for (size_t i = 0; i < args->len; i++) {
            if (args->items[i]->type != KN_NODE_SCALAR) {
                rc = kn_error_set(err, KN_EPARSE, &args->items[i]->loc,
                                  "exec args[%zu] must be a string, got %s", i,
                                  kn_node_describe(args->items[i]));
                goto out;
            }
            x->args[i + 1] = kn_strdup(args->items[i]->scalar);
        }
    }
    x->env = kn_calloc(1 + (env && env->type == KN_NODE_SEQ ? env->len : 0), sizeof(char *));
    if (env && !(env->type == KN_NODE_SCALAR && kn_node_scalar_kind(env) == KN_SCALAR_NULL)) {
        if (env->type != KN_NODE_SEQ) {
            rc = kn_error_set(err, KN_EPARSE, &env->loc, "exec 'env' must be a list, got %s",
                              kn_node_describe(env));
            goto out;
        }
        for (size_t i = 0; i < env->len; i++) {
            const struct kn_node *e = env->items[i], *name = NULL, *value = NULL;
            if (e->type != KN_NODE_MAP) {
                rc = kn_error_set(err, KN_EPARSE, &e->loc, "exec env[%zu] must be a map", i);
                goto out;
            }
            if ((rc = kn_kube_str(e, "name", &name, err)) < 0 ||
                (rc = kn_kube_str(e, "value", &value, err)) < 0) {
                goto out;
            }
            if (!name || name->len == 0 || strchr(name->scalar, '=')) {
                rc = kn_error_set(err, KN_EPARSE, &e->loc, "exec env[%zu] needs a 'name'", i);
                goto out;
            }
            x->env[i] = kn_asprintf("%s=%s", name->scalar, value ? value->scalar : "");
        }
    }
    if (provide) {
        x->cluster_info = json_dumps(info, JSON_COMPACT | JSON_SORT_KEYS);
    }
    c->exec = x;
    x = NULL;
out:
    if (x) {
        free(x->api_version);
        free(x->command);
        free(x->install_hint);
        free(x->dir);
        free(x->state_dir);
        kn_kube_free_strv(x->args);
        kn_kube_free_strv(x->env);
        free(x);
    }
    return rc;
}

static int kn_kube_load_user(struct kn_kube_creds *c, const struct kn_node *u, const char *dir,
                             const char *state_dir, json_t *info, struct kn_error *err)
{
    const struct kn_node *token = NULL, *token_file = NULL, *cert = NULL, *certd = NULL;
    const struct kn_node *key = NULL, *keyd = NULL;
    const struct kn_node *ex = kn_node_get(u, "exec");
    int rc = 0;

    if ((rc = kn_kube_str(u, "token", &token, err)) < 0 ||
        (rc = kn_kube_str(u, "tokenFile", &token_file, err)) < 0 ||
        (rc = kn_kube_str(u, "client-certificate", &cert, err)) < 0 ||
        (rc = kn_kube_str(u, "client-certificate-data", &certd, err)) < 0 ||
        (rc = kn_kube_str(u, "client-key", &key, err)) < 0 ||
        (rc = kn_kube_str(u, "client-key-data", &keyd, err)) < 0) {
        goto out;
    }
    if ((rc = kn_kube_refuse(u, "auth-provider",
                             "use an exec plugin (client.authentication.k8s.io/v1)", err)) < 0 ||
        (rc = kn_kube_refuse(u, "username", "use a token, a client certificate or exec", err)) <
            0 ||
        (rc = kn_kube_refuse(u, "as", "kanaria does not impersonate", err)) < 0) {
        goto out;
    }
    if ((cert || certd) != (key || keyd)) {
        rc = kn_error_set(err, KN_EPARSE, &u->loc,
                          "a client certificate needs its key: give both "
                          "client-certificate(-data) and client-key(-data)");
        goto out;
    }
    if (certd) {
        if ((rc = kn_kube_write_b64(certd, "client-certificate-data", state_dir, "client.crt",
                                    &c->cert_file, err)) < 0) {
            goto out;
        }
    } else if (cert) {
        c->cert_file = kn_kube_resolve_path(dir, cert->scalar);
    }
    if (keyd) {
        if ((rc = kn_kube_write_b64(keyd, "client-key-data", state_dir, "client.key", &c->key_file,
                                    err)) < 0) {
            goto out;
        }
    } else if (key) {
        c->key_file = kn_kube_resolve_path(dir, key->scalar);
    }
    if (token && token->len > 0) {
        if (strpbrk(token->scalar, "\r\n")) {
            rc = kn_error_set(err, KN_EPARSE, &token->loc, "'token' holds a line end");
            goto out;
        }
        c->token = kn_strdup(token->scalar);
    } else if (token_file) {
        c->token_file = kn_kube_resolve_path(dir, token_file->scalar);
    }
    if (ex && !(ex->type == KN_NODE_SCALAR && kn_node_scalar_kind(ex) == KN_SCALAR_NULL)) {
        if (c->token || c->token_file) {
            rc = kn_error_set(err, KN_EPARSE, &ex->loc,
                              "a user has one of 'token', 'tokenFile' and 'exec'");
            goto out;
        }
        rc = kn_kube_load_exec(c, ex, dir, state_dir, info, err);
    }
out:
    return rc;
}

/* kubeconfig file `path`, context `want` (NULL: current-context). */
static int kn_kube_load_file(struct kn_kube_creds *c, const char *path, const char *want,
                             const char *state_dir, struct kn_error *err)
{
    struct kn_yaml *y = NULL;
    const struct kn_node *root, *cur = NULL, *ctx = NULL, *cl = NULL, *user = NULL;
    const struct kn_node *cl_name = NULL, *user_name = NULL, *ns = NULL;
    struct kn_loc file_loc = {.file = path};
    char *dir = kn_kube_dirname(path);
    json_t *info = json_object();
    const char *ctx_name;
    int rc = 0;

    if ((rc = kn_yaml_load_file(&y, path, NULL, NULL, err)) < 0) {
        goto out;
    }
    if (y->ndocs == 0 || y->docs[0]->type != KN_NODE_MAP) {
        rc = kn_error_set(err, KN_EPARSE, y->ndocs ? &y->docs[0]->loc : &file_loc,
                          "a kubeconfig must be a map (clusters, users, contexts)");
        goto out;
    }
    root = y->docs[0];
    if ((rc = kn_kube_str(root, "current-context", &cur, err)) < 0) {
        goto out;
    }
    if (!want && (!cur || cur->len == 0)) {
        rc = kn_error_set(err, KN_EINVAL, &root->loc,
                          "the kubeconfig has no current-context and no context was given");
        goto out;
    }
    ctx_name = want ? want : cur->scalar;
    if ((rc = kn_kube_named(root, "contexts", "context", ctx_name,
                            cur && !want ? &cur->loc : &root->loc, &ctx, err)) < 0) {
        goto out;
    }
    if ((rc = kn_kube_str(ctx, "cluster", &cl_name, err)) < 0 ||
        (rc = kn_kube_str(ctx, "user", &user_name, err)) < 0 ||
        (rc = kn_kube_str(ctx, "namespace", &ns, err)) < 0) {
        goto out;
    }
    if (!cl_name) {
        rc = kn_error_set(err, KN_EPARSE, &ctx->loc, "context '%s' has no 'cluster'", ctx_name);
        goto out;
    }
    if ((rc = kn_kube_named(root, "clusters", "cluster", cl_name->scalar, &cl_name->loc, &cl,
                            err)) < 0 ||
        (rc = kn_kube_load_cluster(c, cl, dir, state_dir, info, err)) < 0) {
        goto out;
    }
    if (user_name && user_name->len > 0) {
        if ((rc = kn_kube_named(root, "users", "user", user_name->scalar, &user_name->loc, &user,
                                err)) < 0 ||
            (rc = kn_kube_load_user(c, user, dir, state_dir, info, err)) < 0) {
            goto out;
        }
    }
    c->namespace_ = kn_strdup(ns && ns->len ? ns->scalar : "default");
    c->source = kn_asprintf("kubeconfig %s, context %s", path, ctx_name);
out:
    json_decref(info);
    free(dir);
    kn_yaml_free(y);
    return rc;
}

static int kn_kube_load_in_cluster(struct kn_kube_creds *c, struct kn_error *err)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    const char *dir = getenv("KANARIA_KUBE_SA_DIR");
    struct kn_secret ns = {0};
    char *path = NULL;
    int rc = 0;

    if (!dir || !*dir) {
        dir = KN_KUBE_SA_DIR;
    }
    if (!host || !*host || !port || !*port) {
        rc = kn_error_set(err, KN_EINVAL, NULL,
                          "in cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must "
                          "be set");
        goto out;
    }
    c->server = strchr(host, ':') ? kn_asprintf("https://[%s]:%s", host, port)
                                  : kn_asprintf("https://%s:%s", host, port);
    c->token_file = kn_asprintf("%s/token", dir);
    if (access(c->token_file, R_OK) != 0) {
        rc = kn_error_set(err, KN_ENOENT, NULL, "in cluster: cannot read the token '%s': %s",
                          c->token_file, strerror(errno));
        goto out;
    }
    path = kn_asprintf("%s/ca.crt", dir);
    if (access(path, R_OK) == 0) {
        c->ca_file = path;
        path = NULL;
    }
    free(path);
    path = kn_asprintf("%s/namespace", dir);
    if (kn_secret_read(&ns, path, KN_SECRET_LINE, NULL) == 0) {
        c->namespace_ = kn_strdup(ns.data);
    } else {
        c->namespace_ = kn_strdup("default");
    }
    c->source = kn_asprintf("in-cluster files in %s", dir);
out:
    kn_secret_release(&ns);
    free(path);
    return rc;
}

int kn_kube_creds_load(struct kn_kube_creds *c, const struct kn_kube_config *cfg,
                       const char *state_dir, struct kn_error *err)
{
    const char *env = getenv("KUBECONFIG");
    const char *home = getenv("HOME");
    char *path = NULL;
    int rc = 0;

    memset(c, 0, sizeof(*c));
    if (cfg && cfg->kubeconfig) {
        path = kn_strdup(cfg->kubeconfig);
    } else if (env && *env) {
        path = kn_strndup(env, strcspn(env, ":"));
    } else if (getenv("KUBERNETES_SERVICE_HOST") && *getenv("KUBERNETES_SERVICE_HOST")) {
        rc = kn_kube_load_in_cluster(c, err);
        goto out;
    } else if (home && *home) {
        path = kn_asprintf("%s/.kube/config", home);
    } else {
        rc = kn_error_set(err, KN_ENOENT, NULL,
                          "no kubeconfig: set 'kubeconfig', $KUBECONFIG or $HOME, or run in a "
                          "cluster");
        goto out;
    }
    if (access(path, R_OK) != 0) {
        rc = kn_error_set(err, KN_ENOENT, NULL, "kubeconfig '%s': %s", path, strerror(errno));
        goto out;
    }
    rc = kn_kube_load_file(c, path, cfg ? cfg->context : NULL, state_dir, err);
out:
    free(path);
    if (rc < 0) {
        kn_kube_creds_release(c);
    }
    return rc;
}

/* ---- exec plugins ---------------------------------------------------------------------------- */

struct kn_kube_exec_run {
    struct kn_kube_exec *x; /* NULL once the owner is gone */
    uv_process_t proc;
    uv_pipe_t out;
    uv_pipe_t errp;
    uv_timer_t timer;
    int open_handles;
    int exited;
    int64_t exit_status;
    int term_signal;
    int out_eof;
    int err_eof;
    int timed_out;
    int too_big;
    struct kn_buf obuf;
    struct kn_buf ebuf;
    kn_kube_exec_cb cb;
    void *data;
};

static void kn_kube_exec_cache_drop(struct kn_kube_exec *x)
{
    kn_secret_free_str(x->token);
    x->token = NULL;
    x->have = 0;
    x->expires = 0;
}

int kn_kube_exec_valid(const struct kn_kube_exec *x)
{
    return x->have && (x->expires == 0 || time(NULL) < x->expires);
}

void kn_kube_exec_drop(struct kn_kube_exec *x)
{
    kn_kube_exec_cache_drop(x);
}

static void kn_kube_exec_run_closed(uv_handle_t *h)
{
    struct kn_kube_exec_run *r = h->data;
    if (--r->open_handles == 0) {
        if (r->obuf.data) {
            OPENSSL_cleanse(r->obuf.data, r->obuf.len);
        }
        kn_buf_release(&r->obuf);
        kn_buf_release(&r->ebuf);
        free(r);
    }
}

static void kn_kube_exec_run_close(struct kn_kube_exec_run *r)
{
    uv_close((uv_handle_t *)&r->proc, kn_kube_exec_run_closed);
    uv_close((uv_handle_t *)&r->out, kn_kube_exec_run_closed);
    uv_close((uv_handle_t *)&r->errp, kn_kube_exec_run_closed);
    uv_close((uv_handle_t *)&r->timer, kn_kube_exec_run_closed);
}

/* "2026-12-06T18:00:00Z", with optional fraction and offset; -1 when unreadable. */
static time_t kn_kube_parse_time(const char *s)
{
    struct tm tm = {0};
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    time_t t;
    if (!p) {
        return -1;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            p++;
        }
    }
    t = timegm(&tm);
    if (*p == 'Z' || *p == 'z') {
        return p[1] == '\0' ? t : -1;
    }
    if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int off = atoi(p + 1) * 3600 + atoi(p + 4) * 60;
        return *p == '+' ? t - off : t + off;
    }
    return -1;
}

/* The ExecCredential in r->obuf into x's cache. */
static int kn_kube_exec_take(struct kn_kube_exec *x, struct kn_kube_exec_run *r, char *msg,
                             size_t msg_size)
{
    struct kn_error e;
    json_t *j = NULL;
    const json_t *st;
    const char *token, *cert, *key, *exp;
    time_t expires = 0;
    int rc = KN_EINVAL;

    kn_error_clear(&e);
    j = json_loadb(r->obuf.data ? r->obuf.data : "", r->obuf.len, 0, NULL);
    if (!json_is_object(j) || !json_is_string(json_object_get(j, "kind")) ||
        strcmp(json_string_value(json_object_get(j, "kind")), "ExecCredential") != 0) {
        snprintf(msg, msg_size, "exec plugin '%s' printed no ExecCredential JSON", x->command);
        goto out;
    }
    st = json_object_get(j, "status");
    if (!json_is_object(st)) {
        snprintf(msg, msg_size, "exec plugin '%s': the ExecCredential has no status", x->command);
        goto out;
    }
    token = json_string_value(json_object_get(st, "token"));
    cert = json_string_value(json_object_get(st, "clientCertificateData"));
    key = json_string_value(json_object_get(st, "clientKeyData"));
    exp = json_string_value(json_object_get(st, "expirationTimestamp"));
    if (exp && (expires = kn_kube_parse_time(exp)) < 0) {
        snprintf(msg, msg_size,
                 "exec plugin '%s': expirationTimestamp '%s' is not an RFC 3339 time", x->command,
                 exp);
        goto out;
    }
    if ((!token || !*token) && (!cert || !key)) {
        snprintf(msg, msg_size,
                 "exec plugin '%s': the ExecCredential has neither a token nor "
                 "clientCertificateData and clientKeyData",
                 x->command);
        goto out;
    }
    if (token && strpbrk(token, "\r\n")) {
        snprintf(msg, msg_size, "exec plugin '%s': the token holds a line end", x->command);
        goto out;
    }
    kn_kube_exec_cache_drop(x);
    if (cert && key) {
        free(x->cert_file);
        free(x->key_file);
        x->cert_file = x->key_file = NULL;
        if (kn_kube_write_private(x->state_dir, "exec-client.crt", cert, strlen(cert),
                                  &x->cert_file, &e) < 0 ||
            kn_kube_write_private(x->state_dir, "exec-client.key", key, strlen(key), &x->key_file,
                                  &e) < 0) {
            snprintf(msg, msg_size, "exec plugin '%.100s': %.300s", x->command, e.msg);
            goto out;
        }
    }
    if (token && *token) {
        x->token = kn_strdup(token);
    }
    x->expires = expires;
    x->have = 1;
    rc = 0;
out:
    if (j) {
        /* the credential's strings are wiped where jansson keeps them */
        const char *fields[] = {"token", "clientKeyData"};
        st = json_object_get(j, "status");
        for (size_t i = 0; i < 2 && json_is_object(st); i++) {
            const json_t *v = json_object_get(st, fields[i]);
            if (json_is_string(v)) {
                OPENSSL_cleanse((void *)(uintptr_t)json_string_value(v), json_string_length(v));
            }
        }
        json_decref(j);
    }
    return rc;
}

static void kn_kube_exec_maybe_done(struct kn_kube_exec_run *r)
{
    struct kn_kube_exec *x = r->x;
    char msg[512];
    int rc = KN_EINVAL;

    if (!r->exited || !r->out_eof || !r->err_eof) {
        return;
    }
    uv_timer_stop(&r->timer);
    msg[0] = '\0';
    if (x) {
        x->run = NULL;
        if (r->timed_out) {
            snprintf(msg, sizeof(msg), "exec plugin '%s' did not finish within %d s", x->command,
                     KN_KUBE_EXEC_TIMEOUT_MS / 1000);
        } else if (r->too_big) {
            snprintf(msg, sizeof(msg), "exec plugin '%s' printed more than %zu bytes", x->command,
                     KN_KUBE_EXEC_MAX_OUT);
        } else if (r->exit_status != 0 || r->term_signal != 0) {
            size_t n = r->ebuf.data ? strcspn(r->ebuf.data, "\n") : 0;
            snprintf(msg, sizeof(msg), "exec plugin '%s' failed (%s %d)%s%.*s", x->command,
                     r->term_signal ? "signal" : "exit status",
                     r->term_signal ? r->term_signal : (int)r->exit_status, n ? ": " : "",
                     (int)(n > 200 ? 200 : n), n ? r->ebuf.data : "");
        } else {
            rc = kn_kube_exec_take(x, r, msg, sizeof(msg));
        }
        if (rc == 0) {
            msg[0] = '\0';
        }
        r->cb(rc, rc == 0 ? NULL : msg, r->data);
    }
    kn_kube_exec_run_close(r);
}

static void kn_kube_exec_on_exit(uv_process_t *p, int64_t status, int sig)
{
    struct kn_kube_exec_run *r = p->data;
    r->exited = 1;
    r->exit_status = status;
    r->term_signal = sig;
    kn_kube_exec_maybe_done(r);
}

static void kn_kube_exec_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = kn_malloc(suggested);
    buf->len = suggested;
}

static void kn_kube_exec_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct kn_kube_exec_run *r = s->data;
    int is_out = s == (uv_stream_t *)&r->out;

    if (n > 0) {
        struct kn_buf *b = is_out ? &r->obuf : &r->ebuf;
        if (kn_buf_add(b, buf->base, (size_t)n) < 0) {
            if (is_out) {
                r->too_big = 1;
                uv_process_kill(&r->proc, SIGKILL);
            }
        }
        OPENSSL_cleanse(buf->base, (size_t)n);
    }
    free(buf->base);
    if (n < 0) {
        uv_read_stop(s);
        if (is_out) {
            r->out_eof = 1;
        } else {
            r->err_eof = 1;
        }
        kn_kube_exec_maybe_done(r);
    }
}

static void kn_kube_exec_on_timeout(uv_timer_t *t)
{
    struct kn_kube_exec_run *r = t->data;
    r->timed_out = 1;
    uv_process_kill(&r->proc, SIGKILL);
}

int kn_kube_exec_start(struct kn_kube_exec *x, uv_loop_t *loop, kn_kube_exec_cb cb, void *data,
                       struct kn_error *err)
{
    struct kn_kube_exec_run *r = NULL;
    uv_process_options_t opts;
    uv_stdio_container_t stdio[3];
    size_t nenv = 0, nextra = 0, k = 0;
    char **envp = NULL;
    char *info = NULL;
    int rc = 0, urc;

    if (x->run) {
        return kn_error_set(err, KN_EINVAL, NULL, "exec plugin '%s' is already running",
                            x->command);
    }
    while (environ[nenv]) {
        nenv++;
    }
    while (x->env[nextra]) {
        nextra++;
    }
    envp = kn_calloc(nenv + nextra + 2, sizeof(char *));
    for (size_t i = 0; i < nenv; i++) {
        if (strncmp(environ[i], "KUBERNETES_EXEC_INFO=", 21) != 0) {
            envp[k++] = environ[i];
        }
    }
    for (size_t i = 0; i < nextra; i++) {
        envp[k++] = x->env[i];
    }
    info = kn_asprintf("KUBERNETES_EXEC_INFO={\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\","
                       "\"spec\":{\"interactive\":false%s%s}}",
                       x->api_version, x->cluster_info ? ",\"cluster\":" : "",
                       x->cluster_info ? x->cluster_info : "");
    envp[k++] = info;

    r = kn_calloc(1, sizeof(*r));
    r->x = x;
    r->cb = cb;
    r->data = data;
    kn_buf_init(&r->obuf, KN_KUBE_EXEC_MAX_OUT);
    kn_buf_init(&r->ebuf, KN_KUBE_EXEC_MAX_ERR);
    uv_pipe_init(loop, &r->out, 0);
    uv_pipe_init(loop, &r->errp, 0);
    uv_timer_init(loop, &r->timer);
    r->out.data = r->errp.data = r->timer.data = r->proc.data = r;
    r->open_handles = 4;

    memset(&opts, 0, sizeof(opts));
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&r->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&r->errp;
    opts.file = x->command;
    opts.args = x->args;
    opts.env = envp;
    opts.cwd = x->dir;
    opts.stdio = stdio;
    opts.stdio_count = 3;
    opts.exit_cb = kn_kube_exec_on_exit;
    if ((urc = uv_spawn(loop, &r->proc, &opts)) < 0) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "exec plugin '%s' cannot start: %s%s%s", x->command,
                          uv_strerror(urc), x->install_hint ? "; " : "",
                          x->install_hint ? x->install_hint : "");
        /* a process handle that failed to spawn is still closed like the others */
        r->x = NULL;
        kn_kube_exec_run_close(r);
        goto out;
    }
    uv_read_start((uv_stream_t *)&r->out, kn_kube_exec_alloc, kn_kube_exec_on_read);
    uv_read_start((uv_stream_t *)&r->errp, kn_kube_exec_alloc, kn_kube_exec_on_read);
    uv_timer_start(&r->timer, kn_kube_exec_on_timeout, KN_KUBE_EXEC_TIMEOUT_MS, 0);
    x->run = r;
out:
    free(info);
    free(envp);
    return rc;
}

static void kn_kube_exec_free(struct kn_kube_exec *x)
{
    if (!x) {
        return;
    }
    if (x->run) {
        /* the run outlives its owner until its handles close; it calls nobody */
        x->run->x = NULL;
        if (!x->run->exited) {
            uv_process_kill(&x->run->proc, SIGKILL);
        }
        x->run = NULL;
    }
    kn_kube_exec_cache_drop(x);
    free(x->api_version);
    free(x->command);
    free(x->cluster_info);
    free(x->install_hint);
    free(x->dir);
    free(x->state_dir);
    free(x->cert_file);
    free(x->key_file);
    kn_kube_free_strv(x->args);
    kn_kube_free_strv(x->env);
    free(x);
}

void kn_kube_creds_release(struct kn_kube_creds *c)
{
    free(c->server);
    free(c->namespace_);
    free(c->source);
    free(c->ca_file);
    free(c->cert_file);
    free(c->key_file);
    free(c->token_file);
    kn_secret_free_str(c->token);
    kn_kube_exec_free(c->exec);
    memset(c, 0, sizeof(*c));
}
