/*
 * kanaria — bare mirrors of one branch of a remote (git.h, "mirrors").
 *
 * The remote is an in-memory anonymous remote: the URL (and any credentials in it) is never
 * written into the mirror, neither into its config, nor into FETCH_HEAD (not written), nor into
 * a reflog (our own reflog message). Credentials come from files read at each fetch, so a
 * rotated token is picked up without a restart, and they are wiped from our memory as soon as
 * libgit2 has its copy.
 *
 * Timeouts: libgit2 1.5 has no per-call or connect timeout for its http or ssh transports
 * (GIT_OPT_SET_SERVER_CONNECT_TIMEOUT arrived in 1.7), and a remote that accepts the connection
 * and then says nothing blocks a fetch for good. So the controller runs each fetch in a process
 * of its own that it can kill (fetch.c); here a fetch only reports that data arrives. A killed
 * fetch may leave lock files behind, which would fail every later fetch: a fetch removes them
 * first, which is safe because it is the only writer of its mirror (see git.h).
 *
 * Messages: libgit2's own messages may quote the URL, so they go through the same redaction
 * as the URL before they reach a struct kn_error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <dirent.h>
#include <unistd.h>

#include "git/git.h"
#include "kanaria/alloc.h"
#include "kanaria/error.h"
#include "kanaria/secret.h"

/* Calls of the credential callback in one fetch before giving up: libgit2 asks again after
 * every rejection, and a bad token must not turn into a loop against the server. */
#define KN_MIRROR_MAX_AUTH_ATTEMPTS 3

#define KN_MIRROR_DEFAULT_HTTP_USER "x-access-token"
#define KN_MIRROR_DEFAULT_SSH_USER  "git"

struct kn_mirror_progress;

/* The payload of libgit2's callbacks in one fetch. */
struct kn_mirror_cred {
    const struct kn_git_auth *auth;            /* borrowed; may be NULL */
    const struct kn_mirror_progress *progress; /* borrowed; NULL: nobody asked */
    int attempts;
};

/* libgit2's message for the last error on this thread; never NULL. */
static const char *kn_mirror_errmsg(void)
{
    const git_error *e = git_error_last();

    return e && e->message ? e->message : "unknown error";
}

/* ---- redaction ---------------------------------------------------------------------------- */

/* Whether c ends the authority (host part) of a URL quoted in free text. */
static int kn_redact_is_stop(char c, int in_text)
{
    if (c == '\0' || c == '/' || c == '?' || c == '#') {
        return 1;
    }
    return in_text && (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\'' || c == '"' ||
                       c == '<' || c == '>' || c == '`');
}

/* Copy s, removing the "user[:password]@" after every "scheme://". In free text (in_text) the
 * authority also ends at white space and quotes. Caller frees. */
static char *kn_redact(const char *s, int in_text)
{
    struct kn_buf b;
    const char *p = s;
    const char *sep;

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    while ((sep = strstr(p, "://")) != NULL) {
        const char *host = sep + 3;
        const char *end = host;
        const char *at = NULL;

        while (!kn_redact_is_stop(*end, in_text)) {
            if (*end == '@') {
                at = end; /* the last one: an unencoded '@' in a password stays hidden */
            }
            end++;
        }
        kn_buf_add(&b, p, (size_t)(host - p));
        p = at ? at + 1 : host;
    }
    kn_buf_adds(&b, p);
    return kn_buf_detach(&b, NULL);
}

char *kn_git_redact_url(const char *url)
{
    return url ? kn_redact(url, 0) : NULL;
}

/* ---- credentials -------------------------------------------------------------------------- */

/* Read the token file (kanaria/secret.h) into *out (caller releases). The message set on failure
 * names the file, never its contents. */
static int kn_mirror_read_token(const char *path, struct kn_secret *out)
{
    struct kn_error err;
    char msg[KN_ERROR_MSG_MAX + 16];
    int rc = 0;

    kn_error_clear(&err);
    if (kn_secret_read(out, path, KN_SECRET_LINE, &err) < 0) {
        snprintf(msg, sizeof(msg), "tokenFile: %s", err.msg);
        git_error_set_str(GIT_ERROR_CALLBACK, msg);
        rc = -1;
    }
    return rc;
}

/* The repository's name for a message, quoted, or "this repository". */
static void kn_mirror_repo_label(char *buf, size_t size, const struct kn_git_auth *auth)
{
    if (auth && auth->repo_name) {
        snprintf(buf, size, "repository '%s'", auth->repo_name);
    } else {
        snprintf(buf, size, "this repository");
    }
}

/* The remote asked for credentials that kanaria has not been given: libgit2's error set to a
 * message naming the key of kanaria.yaml that gives them. */
static void kn_mirror_auth_hint(const struct kn_git_auth *auth, unsigned int allowed_types)
{
    char label[KN_ERROR_MSG_MAX / 2];
    char msg[KN_ERROR_MSG_MAX];

    kn_mirror_repo_label(label, sizeof(label), auth);
    if (allowed_types & GIT_CREDENTIAL_SSH_KEY) {
        snprintf(msg, sizeof(msg),
                 "authentication required: set 'credentials.sshKeyFile' for %s in kanaria.yaml",
                 label);
    } else {
        snprintf(msg, sizeof(msg),
                 "authentication required: set 'credentials.tokenFile' (and "
                 "'credentials.username' when the server needs one) for %s in kanaria.yaml",
                 label);
    }
    git_error_set_str(GIT_ERROR_CALLBACK, msg);
}

static int kn_mirror_cred_cb(git_credential **out, const char *url, const char *username_from_url,
                             unsigned int allowed_types, void *payload)
{
    struct kn_mirror_cred *c = payload;
    const struct kn_git_auth *auth = c->auth;
    const char *user = auth && auth->username ? auth->username : username_from_url;
    struct kn_secret token = {0};
    int rc = GIT_PASSTHROUGH;

    (void)url;
    if (++c->attempts > KN_MIRROR_MAX_AUTH_ATTEMPTS) {
        char msg[64];

        snprintf(msg, sizeof(msg), "authentication failed after %d attempts",
                 KN_MIRROR_MAX_AUTH_ATTEMPTS);
        git_error_set_str(GIT_ERROR_CALLBACK, msg);
        rc = GIT_EAUTH;
        goto out;
    }
    if ((allowed_types & GIT_CREDENTIAL_SSH_KEY) && auth && auth->ssh_key_file) {
        rc = git_credential_ssh_key_new(out, user ? user : KN_MIRROR_DEFAULT_SSH_USER, NULL,
                                        auth->ssh_key_file, NULL);
    } else if ((allowed_types & GIT_CREDENTIAL_USERPASS_PLAINTEXT) && auth && auth->token_file) {
        if (kn_mirror_read_token(auth->token_file, &token) < 0) {
            rc = GIT_EUSER;
            goto out;
        }
        rc = git_credential_userpass_plaintext_new(out, user ? user : KN_MIRROR_DEFAULT_HTTP_USER,
                                                   token.data);
    } else if (allowed_types & GIT_CREDENTIAL_USERNAME) {
        /* ssh asks for the user name alone before it asks for a key */
        rc = git_credential_username_new(out, user ? user : KN_MIRROR_DEFAULT_SSH_USER);
    } else {
        /* libgit2 would say "authentication required but no callback set": say what to set */
        kn_mirror_auth_hint(auth, allowed_types);
        rc = GIT_EAUTH;
    }
out:
    kn_secret_release(&token);
    return rc;
}

/* ---- the mirror --------------------------------------------------------------------------- */

/* Whether path is missing or an empty folder: the cases where a mirror may be created. */
static int kn_mirror_is_vacant(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *e;
    int vacant = 1;

    if (stat(path, &st) < 0) {
        return errno == ENOENT;
    }
    if (!S_ISDIR(st.st_mode) || !(d = opendir(path))) {
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            vacant = 0;
            break;
        }
    }
    closedir(d);
    return vacant;
}

/* Open the bare mirror at path, creating it (and its parent folders) when vacant. */
static int kn_mirror_open(git_repository **out, const char *path, struct kn_error *err)
{
    int rc = 0;
    git_repository_init_options opts;

    *out = NULL;
    /* NO_SEARCH: a mirror folder that is not a repository must not open an enclosing one. */
    if (git_repository_open_ext(out, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) == 0) {
        goto out;
    }
    if (!kn_mirror_is_vacant(path)) {
        rc =
            kn_error_set(err, KN_EIO, NULL, "mirror '%s' exists and is not a git repository", path);
        goto out;
    }
    /* the _init functions, not the macros: these fill every field (-Wmissing-field-initializers) */
    git_repository_init_options_init(&opts, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
    opts.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH;
    if (git_repository_init_ext(out, path, &opts) < 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot create mirror '%s': %s", path,
                          kn_mirror_errmsg());
    }
out:
    if (rc < 0 && *out) {
        git_repository_free(*out);
        *out = NULL;
    }
    return rc;
}

/* The lock files a git writer takes in a bare repository (besides those under refs/): a
 * process killed while it held one leaves it, and libgit2 then refuses to take it again. */
static const char *const kn_mirror_top_locks[] = {
    "HEAD.lock", "config.lock", "packed-refs.lock", "FETCH_HEAD.lock", "shallow.lock", NULL,
};

/* The deepest folder under refs/ searched for stale locks (a branch name is a path). */
#define KN_MIRROR_MAX_REF_DEPTH 32

static int kn_mirror_has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Remove every file under dir (a folder of the mirror) whose name ends in suffix, or starts with
 * prefix when suffix is NULL, descending `depth` more levels. Errors are left for the fetch to
 * report: it fails on the same file with a clearer message. */
static void kn_mirror_remove_stale(const char *dir, const char *prefix, const char *suffix,
                                   int depth)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    struct stat st;

    if (!d) {
        return;
    }
    while ((e = readdir(d)) != NULL) {
        char *path;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        path = kn_asprintf("%s/%s", dir, e->d_name);
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            if (depth > 0) {
                kn_mirror_remove_stale(path, prefix, suffix, depth - 1);
            }
        } else if (suffix ? kn_mirror_has_suffix(e->d_name, suffix)
                          : strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            unlink(path);
        }
        free(path);
    }
    closedir(d);
}

/* What a killed writer of the mirror left behind: lock files, and libgit2's temporary pack and
 * object files (named pack_git2_* and tmp_object_git2_*), which are never part of the repository
 * until renamed. Only for a mirror nothing else writes to. */
static void kn_mirror_clear_stale(const char *path)
{
    char *p;

    for (size_t i = 0; kn_mirror_top_locks[i]; i++) {
        p = kn_asprintf("%s/%s", path, kn_mirror_top_locks[i]);
        unlink(p);
        free(p);
    }
    p = kn_asprintf("%s/refs", path);
    kn_mirror_remove_stale(p, NULL, ".lock", KN_MIRROR_MAX_REF_DEPTH);
    free(p);
    p = kn_asprintf("%s/objects/pack", path);
    kn_mirror_remove_stale(p, "pack_git2_", NULL, 0);
    free(p);
    p = kn_asprintf("%s/objects", path);
    kn_mirror_remove_stale(p, "tmp_object_git2_", NULL, 1);
    free(p);
}

/* The progress hook of one fetch, called by libgit2 whenever the remote sends something. */
struct kn_mirror_progress {
    kn_git_progress_cb cb;
    void *data;
};

static int kn_mirror_sideband_cb(const char *str, int len, void *payload)
{
    struct kn_mirror_cred *c = payload;

    (void)str;
    (void)len;
    return c->progress && c->progress->cb(c->progress->data) != 0 ? GIT_EUSER : 0;
}

static int kn_mirror_transfer_cb(const git_indexer_progress *stats, void *payload)
{
    struct kn_mirror_cred *c = payload;

    (void)stats;
    return c->progress && c->progress->cb(c->progress->data) != 0 ? GIT_EUSER : 0;
}

/* Whether the remote advertised refname in its last connection (1), did not (0), or the list is
 * unavailable (<0, libgit2's error set). */
static int kn_mirror_remote_has(git_remote *remote, const char *refname)
{
    const git_remote_head **heads;
    size_t n;
    size_t i;

    if (git_remote_ls(&heads, &n, remote) < 0) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (strcmp(heads[i]->name, refname) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Whether url is a local path (not a URL, nor scp-like "host:path") that does not exist. libgit2
 * says "unsupported URL protocol" for those, which sends the reader the wrong way. */
static int kn_mirror_is_missing_path(const char *url)
{
    const char *colon = strchr(url, ':');
    const char *slash = strchr(url, '/');
    struct stat st;

    if (strstr(url, "://")) {
        return 0;
    }
    if (url[0] != '/' && url[0] != '.' && colon && (!slash || colon < slash)) {
        return 0;
    }
    return stat(url, &st) < 0 && errno == ENOENT;
}

/* KN_EIO "fetching URL: libgit2's message", both redacted. */
static int kn_mirror_fetch_error(struct kn_error *err, const char *shown_url)
{
    char *msg = kn_redact(kn_mirror_errmsg(), 1);
    int rc = kn_error_set(err, KN_EIO, NULL, "fetching %s: %s", shown_url, msg);

    free(msg);
    return rc;
}

/* KN_EIO for a server certificate that is not trusted: libgit2's message and what to do. */
static int kn_mirror_cert_error(struct kn_error *err, const char *shown_url,
                                const struct kn_git_auth *auth)
{
    char *msg = kn_redact(kn_mirror_errmsg(), 1);
    char label[KN_ERROR_MSG_MAX / 2];
    int rc;

    kn_mirror_repo_label(label, sizeof(label), auth);
    if (auth && auth->ca_file) {
        rc = kn_error_set(err, KN_EIO, NULL,
                          "fetching %s: %s: the server's certificate is not signed by a CA of "
                          "'caFile' '%s' of %s",
                          shown_url, msg, auth->ca_file, label);
    } else {
        rc = kn_error_set(err, KN_EIO, NULL,
                          "fetching %s: %s: the server's certificate is not trusted; for a "
                          "private CA set 'caFile' for %s in kanaria.yaml",
                          shown_url, msg, label);
    }
    free(msg);
    return rc;
}

/* Trust the CA certificates of ca_file (and only them) for the https fetches of this process. */
static int kn_mirror_trust(const char *ca_file, struct kn_error *err)
{
    int rc = 0;

    if (git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, ca_file, NULL) < 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "'caFile' '%s': %s", ca_file, kn_mirror_errmsg());
    }
    return rc;
}

int kn_git_mirror_fetch(const char *mirror_path, const char *url, const char *branch,
                        const struct kn_git_auth *auth, git_oid *head, struct kn_error *err)
{
    return kn_git_mirror_fetch_progress(mirror_path, url, branch, auth, head, err, NULL, NULL);
}

int kn_git_mirror_fetch_progress(const char *mirror_path, const char *url, const char *branch,
                                 const struct kn_git_auth *auth, git_oid *head,
                                 struct kn_error *err, kn_git_progress_cb progress, void *data)
{
    int rc = 0;
    int valid = 0;
    int has;
    int gerr;
    char *shown_url = NULL;
    char *refname = NULL;
    char *refspec = NULL;
    git_repository *repo = NULL;
    git_remote *remote = NULL;
    git_reference *ref = NULL;
    git_remote_create_options ropts;
    git_fetch_options opts;
    struct kn_mirror_progress hook = {.cb = progress, .data = data};
    struct kn_mirror_cred cred = {.auth = auth, .progress = progress ? &hook : NULL};
    git_strarray specs;

    if (!mirror_path || !*mirror_path || !url || !*url || !branch || !*branch || !head) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "mirror fetch needs a mirror path, URL and branch");
        goto out;
    }
    shown_url = kn_git_redact_url(url);
    refname = kn_asprintf("refs/heads/%s", branch);
    if (git_reference_name_is_valid(&valid, refname) < 0 || !valid) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "'%s' is not a valid branch name", branch);
        goto out;
    }
    if ((rc = kn_mirror_open(&repo, mirror_path, err)) < 0) {
        goto out;
    }
    kn_mirror_clear_stale(mirror_path);
    if (kn_mirror_is_missing_path(url)) {
        rc = kn_error_set(err, KN_EIO, NULL, "fetching %s: no such repository", shown_url);
        goto out;
    }
    /* Anonymous (no name): the URL lives in memory only. libgit2 takes a local path (absolute or
     * relative to the working folder) as well as a URL. url.*.insteadOf is not applied: the URL
     * is used exactly as configured, whatever the host's git configuration says. (It also keeps
     * clear of libgit2 1.5's git_regexp_match, which leaks on every config entry it does not
     * match; fixed upstream in libgit2 PR #6382, 1.6.) */
    git_remote_create_options_init(&ropts, GIT_REMOTE_CREATE_OPTIONS_VERSION);
    ropts.repository = repo;
    ropts.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
    if (git_remote_create_with_opts(&remote, url, &ropts) < 0) {
        rc = kn_mirror_fetch_error(err, shown_url);
        goto out;
    }

    git_fetch_options_init(&opts, GIT_FETCH_OPTIONS_VERSION);
    refspec = kn_asprintf("+%s:%s", refname, refname);
    specs.strings = &refspec;
    specs.count = 1;
    opts.prune = GIT_FETCH_NO_PRUNE;
    opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
    opts.update_fetchhead = 0; /* FETCH_HEAD would record the URL */
    opts.callbacks.credentials = kn_mirror_cred_cb;
    if (progress) {
        opts.callbacks.sideband_progress = kn_mirror_sideband_cb;
        opts.callbacks.transfer_progress = kn_mirror_transfer_cb;
    }
    opts.callbacks.payload = &cred;
    /* certificate_check unset: libgit2 verifies against the system's trust store, or caFile's */
    if (auth && auth->ca_file && (rc = kn_mirror_trust(auth->ca_file, err)) < 0) {
        goto out;
    }
    if ((gerr = git_remote_fetch(remote, &specs, &opts, "kanaria: fetch")) < 0) {
        rc = gerr == GIT_ECERTIFICATE ? kn_mirror_cert_error(err, shown_url, auth)
                                      : kn_mirror_fetch_error(err, shown_url);
        goto out;
    }

    /* A branch the remote does not have fetches nothing and is no error to libgit2; ask what
     * the remote advertised rather than trust a ref left in the mirror by an earlier fetch. */
    has = kn_mirror_remote_has(remote, refname);
    if (has < 0) {
        rc = kn_mirror_fetch_error(err, shown_url);
        goto out;
    }
    if (!has || git_reference_lookup(&ref, repo, refname) < 0 ||
        git_reference_type(ref) != GIT_REFERENCE_DIRECT) {
        rc = kn_error_set(err, KN_EIO, NULL, "branch '%s' not found in %s", branch, shown_url);
        goto out;
    }
    git_oid_cpy(head, git_reference_target(ref));
out:
    git_reference_free(ref);
    git_remote_free(remote);
    git_repository_free(repo);
    free(refspec);
    free(refname);
    free(shown_url);
    return rc;
}
