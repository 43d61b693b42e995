/*
 * kanaria — reading a Git repository without a checkout (git.h).
 *
 * Every libgit2 error is translated here into a KN_E* code, with libgit2's own message in the
 * struct kn_error where it helps. Nothing here handles credentials: the repository is local and
 * fetching happens elsewhere.
 *
 * The tree source follows symlink entries itself, component by component, the way the folder
 * source lets realpath() do it: a symlink anywhere in a path (the last component or a folder on
 * the way) is replaced by its target resolved against the link's folder, and the lookup starts
 * again from the top. A target that is absolute or climbs above the top is refused with
 * KN_EPATH, so a committed link to /etc/passwd is never even looked at.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "git/git.h"
#include "kanaria/alloc.h"
#include "kanaria/app.h"
#include "kanaria/error.h"

/* Symlinks followed for one read before giving up (the kernel's own limit is 40; a repository
 * has no business chaining more than a few). */
#define KN_GIT_MAX_LINKS 8

/* The longest symlink target read (PATH_MAX on Linux). */
#define KN_GIT_MAX_LINK_TARGET 4096

/* Deeper trees than this fail the walk with KN_ELIMIT, as the folder source does. */
#define KN_GIT_WALK_MAX_DEPTH 128

/* Hex digits of the commit id in a source's name. */
#define KN_GIT_SHORT_ID 12

struct kn_git_source {
    struct kn_source base; /* first, so that a struct kn_source * converts back */
    git_repository *repo;  /* borrowed: must outlive the source */
    git_odb *odb;          /* owned */
    git_tree *tree;        /* owned: the commit's top tree */
};

/* libgit2's message for the last error on this thread; never NULL. */
static const char *kn_git_errmsg(void)
{
    const git_error *e = git_error_last();

    return e && e->message ? e->message : "unknown error";
}

/* ---- repository and revisions ------------------------------------------------------------ */

int kn_git_open(git_repository **out, const char *path, struct kn_error *err)
{
    int rc = 0;
    int grc;

    *out = NULL;
    if (!path || !*path) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "no repository path given");
        goto out;
    }
    /* NO_SEARCH: a folder that is not a repository must not silently open whatever repository
     * happens to contain it. */
    grc = git_repository_open_ext(out, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
    if (grc == GIT_ENOTFOUND) {
        rc = kn_error_set(err, KN_ENOTFOUND, NULL, "'%s' is not a git repository", path);
    } else if (grc < 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot open repository '%s': %s", path,
                          kn_git_errmsg());
    }
out:
    if (rc < 0 && *out) {
        git_repository_free(*out);
        *out = NULL;
    }
    return rc;
}

int kn_git_resolve(git_repository *repo, const char *rev, git_oid *out, struct kn_error *err)
{
    int rc = 0;
    int grc;
    git_object *obj = NULL;
    git_object *commit = NULL;

    if (!repo || !rev || !*rev) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "no revision given");
        goto out;
    }
    grc = git_revparse_single(&obj, repo, rev);
    if (grc == GIT_ENOTFOUND) {
        rc = kn_error_set(err, KN_ENOTFOUND, NULL, "revision '%s' not found", rev);
        goto out;
    }
    if (grc == GIT_EAMBIGUOUS) {
        rc = kn_error_set(err, KN_ENOTFOUND, NULL, "revision '%s' is ambiguous", rev);
        goto out;
    }
    if (grc == GIT_EINVALIDSPEC) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "'%s' is not a valid revision: %s", rev,
                          kn_git_errmsg());
        goto out;
    }
    if (grc < 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot resolve revision '%s': %s", rev,
                          kn_git_errmsg());
        goto out;
    }
    /* A tag peels to its commit; a tree or a blob ("main:README") names no commit. */
    if (git_object_peel(&commit, obj, GIT_OBJECT_COMMIT) < 0) {
        rc = kn_error_set(err, KN_ENOTFOUND, NULL, "revision '%s' does not name a commit", rev);
        goto out;
    }
    git_oid_cpy(out, git_object_id(commit));
out:
    git_object_free(commit);
    git_object_free(obj);
    return rc;
}

/* Look up a commit, with the error translated; *out is freed by the caller. */
static int kn_git_commit_lookup(git_commit **out, git_repository *repo, const git_oid *id,
                                struct kn_error *err)
{
    int rc = 0;
    int grc;
    char hex[GIT_OID_HEXSZ + 1];

    *out = NULL;
    grc = git_commit_lookup(out, repo, id);
    if (grc < 0) {
        git_oid_tostr(hex, sizeof(hex), id);
        if (grc == GIT_ENOTFOUND) {
            rc = kn_error_set(err, KN_ENOTFOUND, NULL, "commit %s not found", hex);
        } else {
            rc = kn_error_set(err, KN_EIO, NULL, "cannot read commit %s: %s", hex, kn_git_errmsg());
        }
    }
    return rc;
}

int kn_git_commit_info(git_repository *repo, const git_oid *commit, struct kn_git_commit_info *out,
                       struct kn_error *err)
{
    int rc = 0;
    git_commit *c = NULL;
    const git_signature *sig;
    const char *summary;
    const char *message;

    memset(out, 0, sizeof(*out));
    if (!repo || !commit) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "no commit given");
        goto out;
    }
    if ((rc = kn_git_commit_lookup(&c, repo, commit, err)) < 0) {
        goto out;
    }
    git_oid_tostr(out->oid, sizeof(out->oid), git_commit_id(c));
    summary = git_commit_summary(c);
    message = git_commit_message(c);
    sig = git_commit_author(c);
    out->summary = kn_strdup(summary ? summary : "");
    out->message = kn_strdup(message ? message : "");
    out->author = kn_asprintf("%s <%s>", sig && sig->name ? sig->name : "",
                              sig && sig->email ? sig->email : "");
    out->time = (long long)git_commit_time(c);
out:
    git_commit_free(c);
    return rc;
}

void kn_git_commit_info_release(struct kn_git_commit_info *info)
{
    if (info) {
        free(info->summary);
        free(info->message);
        free(info->author);
        memset(info, 0, sizeof(*info));
    }
}

int kn_git_is_ancestor(git_repository *repo, const git_oid *ancestor, const git_oid *commit)
{
    int rc;

    if (!repo || !ancestor || !commit) {
        rc = KN_EINVAL;
        goto out;
    }
    if (git_oid_equal(ancestor, commit)) {
        rc = 1;
        goto out;
    }
    rc = git_graph_descendant_of(repo, commit, ancestor);
    if (rc < 0) {
        /* Gone (a force-push followed by gc) or unreadable: the caller cannot tell that it is
         * an ancestor, and a negative code lets it say why. */
        rc = rc == GIT_ENOTFOUND ? KN_ENOTFOUND : KN_EIO;
    }
out:
    return rc;
}

/* ---- the tree source: reading ------------------------------------------------------------ */

/* Load the blob of a symlink entry and resolve its target against `dir` (the link's folder)
 * into *out (caller frees). KN_EPATH when the target leaves the repository. */
static int kn_git_link_target(struct kn_git_source *g, const git_tree_entry *entry, const char *dir,
                              const char *shown, char **out, struct kn_error *err)
{
    int rc = 0;
    git_blob *blob = NULL;
    git_object_size_t size;
    char *target = NULL;

    *out = NULL;
    if (git_blob_lookup(&blob, g->repo, git_tree_entry_id(entry)) < 0) {
        rc =
            kn_error_set(err, KN_EIO, NULL, "cannot read symlink '%s': %s", shown, kn_git_errmsg());
        goto out;
    }
    size = git_blob_rawsize(blob);
    if (size > KN_GIT_MAX_LINK_TARGET) {
        rc = kn_error_set(err, KN_EIO, NULL, "'%s' is a symlink with a target longer than %d bytes",
                          shown, KN_GIT_MAX_LINK_TARGET);
        goto out;
    }
    target = kn_strndup(git_blob_rawcontent(blob), (size_t)size);
    if (strlen(target) != (size_t)size) {
        rc = kn_error_set(err, KN_EIO, NULL, "'%s' is a symlink with a NUL in its target", shown);
        goto out;
    }
    if (kn_path_resolve(out, dir, target) < 0) {
        rc = kn_error_set(err, KN_EPATH, NULL, "'%s' is a symlink that leaves the repository",
                          shown);
        goto out;
    }
out:
    free(target);
    git_blob_free(blob);
    return rc;
}

/* Copy the blob `id` into out, refusing it before it is loaded when it is larger than out->max
 * (the object header carries the size, so a huge blob is never inflated). */
static int kn_git_read_blob(struct kn_git_source *g, const git_oid *id, const char *shown,
                            struct kn_buf *out, struct kn_error *err)
{
    int rc = 0;
    size_t hsize = 0;
    git_object_t htype = GIT_OBJECT_INVALID;
    git_blob *blob = NULL;
    git_object_size_t size;

    if (git_odb_read_header(&hsize, &htype, g->odb, id) < 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot read '%s': %s", shown, kn_git_errmsg());
        goto out;
    }
    if (out->max != KN_BUF_UNBOUNDED && hsize > out->max) {
        rc = kn_error_set(err, KN_ETOOBIG, NULL, "'%s' is larger than %zu bytes", shown, out->max);
        goto out;
    }
    if (git_blob_lookup(&blob, g->repo, id) < 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot read '%s': %s", shown, kn_git_errmsg());
        goto out;
    }
    size = git_blob_rawsize(blob);
    if (size > SIZE_MAX || kn_buf_add(out, git_blob_rawcontent(blob), (size_t)size) < 0) {
        rc = kn_error_set(err, KN_ETOOBIG, NULL, "'%s' is larger than %zu bytes", shown, out->max);
        goto out;
    }
    /* An empty file still leaves out->data pointing at a NUL. */
    rc = kn_buf_add(out, "", 0);
out:
    git_blob_free(blob);
    return rc;
}

void kn_git_global_init(void)
{
    git_libgit2_init();
    git_libgit2_opts(GIT_OPT_SET_CACHE_OBJECT_LIMIT, GIT_OBJECT_TREE, (size_t)64 << 20);
}

/*
 * Find the normalized path `path` in the tree. When a symlink is met on the way, *next is set to
 * the path to look up instead (the link replaced by its resolved target) and *entry is NULL;
 * otherwise *entry is the entry of the last component (caller frees with git_tree_entry_free).
 */
static int kn_git_lookup(struct kn_git_source *g, const char *path, const char *shown,
                         git_tree_entry **entry, char **next, struct kn_error *err)
{
    int rc = 0;
    git_tree *owned = NULL;
    const git_tree *tree = g->tree;
    const git_tree_entry *e;
    char *name = NULL;
    char *dir = NULL;
    char *target = NULL;
    const char *p = path;

    *entry = NULL;
    *next = NULL;
    for (;;) {
        size_t n = strcspn(p, "/");
        const char *rest = p + n; /* "" or "/more" */
        git_filemode_t mode;

        free(name);
        name = kn_strndup(p, n);
        e = git_tree_entry_byname(tree, name);
        if (!e) {
            rc = kn_error_set(err, KN_ENOENT, NULL, "'%s' does not exist", shown);
            goto out;
        }
        mode = git_tree_entry_filemode(e);
        if (mode == GIT_FILEMODE_LINK) {
            /* The link's folder is everything before this component. */
            dir = kn_strndup(path, p > path ? (size_t)(p - path - 1) : 0);
            if ((rc = kn_git_link_target(g, e, dir, shown, &target, err)) < 0) {
                goto out;
            }
            if (*rest == '\0') {
                *next = target;
                target = NULL;
            } else if (*target == '\0') {
                *next = kn_strdup(rest + 1); /* a link to the top */
            } else {
                *next = kn_asprintf("%s%s", target, rest);
            }
            goto out;
        }
        if (*rest == '\0') {
            if (git_tree_entry_dup(entry, e) < 0) {
                rc =
                    kn_error_set(err, KN_EIO, NULL, "cannot read '%s': %s", shown, kn_git_errmsg());
            }
            goto out;
        }
        if (mode != GIT_FILEMODE_TREE) {
            /* A file (or a submodule) where the path needs a folder, like ENOTDIR */
            rc = kn_error_set(err, KN_ENOENT, NULL, "'%s' does not exist", shown);
            goto out;
        }
        git_tree *sub = NULL;
        if (git_tree_lookup(&sub, g->repo, git_tree_entry_id(e)) < 0) {
            rc = kn_error_set(err, KN_EIO, NULL, "cannot read '%s': %s", shown, kn_git_errmsg());
            goto out;
        }
        git_tree_free(owned);
        owned = sub;
        tree = sub;
        p = rest + 1;
    }
out:
    free(target);
    free(dir);
    free(name);
    git_tree_free(owned);
    return rc;
}

static int kn_git_source_read(struct kn_source *src, const char *relpath, struct kn_buf *out,
                              struct kn_error *err)
{
    struct kn_git_source *g = (struct kn_git_source *)src;
    int rc = 0;
    char *path = NULL;
    git_tree_entry *entry = NULL;
    const char *shown = relpath && *relpath ? relpath : ".";

    kn_buf_reset(out);
    if ((rc = kn_source_check_path(relpath, &path, err)) < 0) {
        goto out;
    }
    for (int links = 0;; links++) {
        char *next = NULL;

        if (*path == '\0') {
            rc = kn_error_set(err, KN_EIO, NULL, "'%s' is not a regular file", shown);
            goto out;
        }
        if (links > KN_GIT_MAX_LINKS) {
            rc = kn_error_set(err, KN_EIO, NULL, "'%s': too many levels of symlinks", shown);
            goto out;
        }
        if ((rc = kn_git_lookup(g, path, shown, &entry, &next, err)) < 0) {
            goto out;
        }
        if (!next) {
            break;
        }
        free(path);
        path = next;
    }
    switch (git_tree_entry_filemode(entry)) {
    case GIT_FILEMODE_BLOB:
    case GIT_FILEMODE_BLOB_EXECUTABLE:
        rc = kn_git_read_blob(g, git_tree_entry_id(entry), shown, out, err);
        break;
    default:
        /* a folder or a submodule */
        rc = kn_error_set(err, KN_EIO, NULL, "'%s' is not a regular file", shown);
        break;
    }
out:
    if (rc < 0) {
        kn_buf_reset(out);
    }
    git_tree_entry_free(entry);
    free(path);
    return rc;
}

/* ---- the tree source: walking, and collecting paths -------------------------------------- */

struct kn_pathset {
    char **items;
    size_t count;
    size_t cap;
};

static void kn_pathset_add(struct kn_pathset *s, char *owned)
{
    if (s->count == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 32;
        s->items = kn_reallocarray(s->items, s->cap, sizeof(*s->items));
    }
    s->items[s->count++] = owned;
}

static int kn_pathset_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort and drop duplicates. */
static void kn_pathset_sort(struct kn_pathset *s)
{
    size_t keep = 0;

    if (s->count == 0) {
        return;
    }
    qsort(s->items, s->count, sizeof(*s->items), kn_pathset_cmp);
    for (size_t i = 0; i < s->count; i++) {
        if (keep > 0 && strcmp(s->items[keep - 1], s->items[i]) == 0) {
            free(s->items[i]);
        } else {
            s->items[keep++] = s->items[i];
        }
    }
    s->count = keep;
}

static void kn_pathset_release(struct kn_pathset *s)
{
    for (size_t i = 0; i < s->count; i++) {
        free(s->items[i]);
    }
    free(s->items);
    memset(s, 0, sizeof(*s));
}

struct kn_git_walk {
    struct kn_pathset paths;
    int rc; /* why the walk was stopped */
};

static int kn_git_walk_cb(const char *root, const git_tree_entry *entry, void *payload)
{
    struct kn_git_walk *w = payload;
    int ret = 0;
    int depth = 0;

    switch (git_tree_entry_filemode(entry)) {
    case GIT_FILEMODE_BLOB:
    case GIT_FILEMODE_BLOB_EXECUTABLE:
    case GIT_FILEMODE_LINK:
        /* Symlinks are reported like files; read decides whether one may be followed. */
        kn_pathset_add(&w->paths, kn_asprintf("%s%s", root, git_tree_entry_name(entry)));
        break;
    case GIT_FILEMODE_TREE:
        for (const char *p = root; *p; p++) {
            depth += *p == '/';
        }
        if (depth >= KN_GIT_WALK_MAX_DEPTH) {
            w->rc = KN_ELIMIT;
            ret = GIT_EUSER;
        }
        break;
    default:
        /* a submodule: its files are not in this repository */
        break;
    }
    return ret;
}

/* Every file (regular, executable, symlink) of tree into *paths, sorted. */
static int kn_git_tree_files(git_tree *tree, struct kn_pathset *paths)
{
    int rc = 0;
    struct kn_git_walk w = {0};

    if (git_tree_walk(tree, GIT_TREEWALK_PRE, kn_git_walk_cb, &w) < 0) {
        rc = w.rc < 0 ? w.rc : KN_EIO;
        goto out;
    }
    kn_pathset_sort(&w.paths);
    *paths = w.paths;
    memset(&w.paths, 0, sizeof(w.paths));
out:
    kn_pathset_release(&w.paths);
    return rc;
}

static int kn_git_source_walk(struct kn_source *src, kn_source_walk_cb cb, void *data)
{
    struct kn_git_source *g = (struct kn_git_source *)src;
    int rc = 0;
    struct kn_pathset paths = {0};

    /* Collected first, so that the callback runs outside libgit2 and its return value comes
     * back unchanged. */
    if ((rc = kn_git_tree_files(g->tree, &paths)) < 0) {
        goto out;
    }
    for (size_t i = 0; i < paths.count && rc == 0; i++) {
        rc = cb(paths.items[i], data);
    }
out:
    kn_pathset_release(&paths);
    return rc;
}

static void kn_git_source_free(struct kn_source *src)
{
    struct kn_git_source *g = (struct kn_git_source *)src;

    git_tree_free(g->tree);
    git_odb_free(g->odb);
    free(g->base.name);
    free(g);
}

static const struct kn_source_ops kn_git_source_ops = {
    .read = kn_git_source_read,
    .walk = kn_git_source_walk,
    .free = kn_git_source_free,
};

/* The commit's top tree, with the error translated; *out is freed by the caller. */
static int kn_git_commit_tree(git_tree **out, git_repository *repo, const git_oid *commit,
                              struct kn_error *err)
{
    int rc = 0;
    git_commit *c = NULL;

    *out = NULL;
    if ((rc = kn_git_commit_lookup(&c, repo, commit, err)) < 0) {
        goto out;
    }
    if (git_commit_tree(out, c) < 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot read the tree of commit %s: %s",
                          git_oid_tostr_s(commit), kn_git_errmsg());
        goto out;
    }
out:
    git_commit_free(c);
    return rc;
}

int kn_git_tree_source_new(struct kn_source **out, git_repository *repo, const git_oid *commit,
                           struct kn_error *err)
{
    int rc = 0;
    git_tree *tree = NULL;
    git_odb *odb = NULL;
    struct kn_git_source *g;
    const char *where;
    char hex[KN_GIT_SHORT_ID + 1];
    size_t wlen;

    *out = NULL;
    if (!repo || !commit) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "no commit given");
        goto out;
    }
    if ((rc = kn_git_commit_tree(&tree, repo, commit, err)) < 0) {
        goto out;
    }
    if (git_repository_odb(&odb, repo) < 0) {
        rc =
            kn_error_set(err, KN_EIO, NULL, "cannot open the object database: %s", kn_git_errmsg());
        goto out;
    }
    /* "repo@commit": the work tree, or the git folder of a bare repository */
    where = git_repository_workdir(repo);
    if (!where) {
        where = git_repository_path(repo);
    }
    wlen = strlen(where);
    if (wlen > 1 && where[wlen - 1] == '/') {
        wlen--;
    }
    git_oid_tostr(hex, sizeof(hex), commit);
    g = kn_calloc(1, sizeof(*g));
    g->base.ops = &kn_git_source_ops;
    g->base.name = kn_asprintf("%.*s@%s", (int)wlen, where, hex);
    g->repo = repo;
    g->odb = odb;
    g->tree = tree;
    odb = NULL;
    tree = NULL;
    *out = &g->base;
out:
    git_odb_free(odb);
    git_tree_free(tree);
    return rc;
}

/* ---- changes between commits ------------------------------------------------------------- */

int kn_git_changed_paths(git_repository *repo, const git_oid *from, const git_oid *to,
                         struct kn_strlist *out, struct kn_error *err)
{
    int rc = 0;
    git_tree *old_tree = NULL;
    git_tree *new_tree = NULL;
    git_diff *diff = NULL;
    git_diff_options opts;
    struct kn_pathset paths = {0};

    memset(out, 0, sizeof(*out));
    /* the function, not GIT_DIFF_OPTIONS_INIT, which -Wmissing-field-initializers rejects */
    git_diff_options_init(&opts, GIT_DIFF_OPTIONS_VERSION);
    if (!repo || !to) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "no commit given");
        goto out;
    }
    if ((rc = kn_git_commit_tree(&new_tree, repo, to, err)) < 0) {
        goto out;
    }
    if (from && (rc = kn_git_commit_tree(&old_tree, repo, from, err)) < 0) {
        goto out;
    }
    /* Only which paths changed matters, never the content. A NULL old tree is the empty tree,
     * so `from` NULL lists every entry of `to` the same way a diff would.
     *
     * No rename detection (git_diff_find_similar): a rename reports both its paths, exactly as
     * the delete plus add it otherwise is, so detecting it would cost blob reads and change
     * nothing. Submodules are kept: a bumped submodule is a change at its path. */
    opts.flags |= GIT_DIFF_SKIP_BINARY_CHECK;
    if (git_diff_tree_to_tree(&diff, repo, old_tree, new_tree, &opts) < 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot compare commits: %s", kn_git_errmsg());
        goto out;
    }
    for (size_t i = 0; i < git_diff_num_deltas(diff); i++) {
        const git_diff_delta *d = git_diff_get_delta(diff, i);

        if (d->old_file.path) {
            kn_pathset_add(&paths, kn_strdup(d->old_file.path));
        }
        if (d->new_file.path) {
            kn_pathset_add(&paths, kn_strdup(d->new_file.path));
        }
    }
    kn_pathset_sort(&paths);
    out->items = paths.items;
    out->count = paths.count;
    memset(&paths, 0, sizeof(paths));
out:
    kn_pathset_release(&paths);
    git_diff_free(diff);
    git_tree_free(old_tree);
    git_tree_free(new_tree);
    return rc;
}
