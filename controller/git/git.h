/*
 * Reading a Git repository without a checkout: a struct kn_source over one commit's tree,
 * revision lookup, commit details, and the paths that changed between two commits. Everything
 * here blocks on disk I/O: the controller calls it from the libuv thread pool, never on the loop.
 * Call kn_git_global_init() once before any of it (kn_cli_main does).
 */
#ifndef KANARIA_GIT_H
#define KANARIA_GIT_H

#include <git2.h>
#include <uv.h>

#include "kanaria/app.h"
#include "kanaria/error.h"
#include "kanaria/schema.h"

struct kn_git_commit_info {
    char oid[GIT_OID_HEXSZ + 1];
    char *summary;  /* first line of the message (owned) */
    char *message;  /* whole message (owned) */
    char *author;   /* "Name <email>" (owned) */
    long long time; /* committer time (git_commit_time), seconds since the epoch */
};

/* git_libgit2_init, and libgit2's object cache told to keep trees of any size: a monorepo's
 * folder of thousands of apps is one tree that every app's lookup walks through, and libgit2
 * keeps no tree over 4 KiB by default, so each lookup would inflate and hash it again. Pair with
 * git_libgit2_shutdown. */
void kn_git_global_init(void);

/* Open the repository at path (a work tree or a bare repository). */
int kn_git_open(git_repository **out, const char *path, struct kn_error *err);

/* Resolve a revision ("main", "HEAD~1", a tag, a full or short id) to a commit. KN_ENOTFOUND
 * with a message naming the revision when there is none. */
int kn_git_resolve(git_repository *repo, const char *rev, git_oid *out, struct kn_error *err);

int kn_git_commit_info(git_repository *repo, const git_oid *commit,
                       struct kn_git_commit_info *out, struct kn_error *err);
void kn_git_commit_info_release(struct kn_git_commit_info *info);

/*
 * A source over the tree of `commit`. Reads blobs by path; a symlink entry is followed when its
 * target stays in the repository (KN_EPATH otherwise); submodules and folders are not files.
 * The source keeps its own reference to what it needs; `repo` must outlive it. Free with
 * kn_source_free.
 */
int kn_git_tree_source_new(struct kn_source **out, git_repository *repo, const git_oid *commit,
                           struct kn_error *err);

/* Paths (files, relative to the top) added, removed, modified or renamed (both sides) between
 * the trees of `from` and `to`, sorted and unique. `from` NULL means every file of `to`. */
int kn_git_changed_paths(git_repository *repo, const git_oid *from, const git_oid *to,
                         struct kn_strlist *out, struct kn_error *err);

/* Whether `ancestor` is `commit` or one of its ancestors (for force-push detection). */
int kn_git_is_ancestor(git_repository *repo, const git_oid *ancestor, const git_oid *commit);

/* ---- mirrors ------------------------------------------------------------------------------ */

/* How to reach a remote: credentials and trust, read from files at each fetch. Any may be NULL. */
struct kn_git_auth {
    const char *username;     /* for https (default "x-access-token") and ssh (default "git") */
    const char *token_file;   /* https: the token is the password */
    const char *ssh_key_file; /* ssh: a private key without passphrase */
    /* https: PEM CA certificates trusted instead of the system's. Set for the whole process
     * (libgit2 has no per-remote trust), so only a process that runs one fetch (`__fetch`)
     * may pass it. */
    const char *ca_file;
    const char *repo_name; /* the repository in kanaria.yaml, named in messages that say which
                            * key to set */
};

/*
 * Bring the bare mirror at `mirror_path` (created when absent) up to date with `branch` of `url`
 * (a local path, file://, http(s):// or ssh:// URL) and return the branch's head in *head.
 * Fetches with a forced refspec, so a force-pushed branch is taken as it now is. KN_EIO when the
 * remote cannot be reached or has no such branch; err's message never contains credentials (URLs
 * have user info stripped).
 *
 * Blocking (disk and network) with no time limit: libgit2 1.5 waits for good on a remote that
 * accepts the connection and never answers. The controller therefore runs it in a process of its
 * own (kn_git_fetch_start) that it can kill. The caller must be the only writer of the mirror:
 * a fetch first removes the lock and temporary files a killed fetch left in it.
 */
int kn_git_mirror_fetch(const char *mirror_path, const char *url, const char *branch,
                        const struct kn_git_auth *auth, git_oid *head, struct kn_error *err);

/* Called from inside a fetch each time the remote sends something (a progress message from the
 * server, a part of the pack): never while the remote is silent. Non-zero stops the fetch. */
typedef int (*kn_git_progress_cb)(void *data);

/* kn_git_mirror_fetch, calling `progress` (may be NULL) as data arrives. */
int kn_git_mirror_fetch_progress(const char *mirror_path, const char *url, const char *branch,
                                 const struct kn_git_auth *auth, git_oid *head,
                                 struct kn_error *err, kn_git_progress_cb progress, void *data);

/* ---- fetches in a process of their own (fetch.c) ------------------------------------------ */

/* The hidden subcommand of the kanaria binary that runs one fetch for kn_git_fetch_start. */
#define KN_GIT_FETCH_COMMAND "__fetch"

/* What one fetch needs; every string is copied by kn_git_fetch_start. */
struct kn_git_fetch_opts {
    const char *exe;         /* the kanaria binary (uv_exepath), run as `exe __fetch` */
    const char *mirror_path; /* as for kn_git_mirror_fetch */
    const char *url;
    const char *branch;
    const struct kn_git_auth *auth; /* may be NULL */
    long long timeout_ms;           /* the whole fetch; > 0 */
    long long stall_timeout_ms;     /* with nothing received from the remote; > 0 */
};

/* The end of a fetch, on the loop, exactly once per started fetch: rc 0 with the branch's head,
 * or < 0 with err (a timeout, a stop, or what kn_git_mirror_fetch said). `head` and `err` are
 * borrowed for the call. The fetch is freed after the callback returns. */
typedef void (*kn_git_fetch_cb)(int rc, const git_oid *head, const struct kn_error *err,
                                void *data);

struct kn_git_fetch;

/*
 * Run kn_git_mirror_fetch in a child process (`exe __fetch`, the request on its stdin, progress
 * and the result on its stdout), never blocking the loop. The child is killed (SIGKILL, its whole
 * process group) when the fetch passes timeout_ms, or when nothing came from the remote for
 * stall_timeout_ms; rc is then KN_EIO with a message that says which. The caller must start at
 * most one fetch per mirror at a time, and none while an earlier one's callback has not run.
 * *out is borrowed until the callback (for kn_git_fetch_stop). Fails (no callback) when the
 * child cannot be started. Loop thread only.
 */
int kn_git_fetch_start(struct kn_git_fetch **out, uv_loop_t *loop,
                       const struct kn_git_fetch_opts *opts, kn_git_fetch_cb cb, void *data,
                       struct kn_error *err);

/* Kill the fetch's child now; the callback still runs, later, with KN_EIO "stopped". */
void kn_git_fetch_stop(struct kn_git_fetch *f);

/* `kanaria __fetch`: the child's side. Reads the request on stdin, writes progress and the result
 * on stdout; exits 0 when the fetch succeeded. */
int kn_git_fetch_child_main(int argc, char **argv);

/* `url` with any user:password@ removed, for logs and messages (caller frees). */
char *kn_git_redact_url(const char *url);

#endif /* KANARIA_GIT_H */
