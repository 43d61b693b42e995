/*
 * kanaria — the manifest model: YAML to a located node tree, canonical form, hash and diff.
 *
 * Loading: kn_yaml_parse turns the bytes of one file (possibly several `---` documents) into a
 * tree of struct kn_node, each carrying file:line:col. Anchors and aliases are resolved by
 * copying, within a bound on the total number of nodes, so a "billion laughs" file fails with
 * KN_ELIMIT instead of eating memory. Files larger than the limit fail with KN_ETOOBIG.
 *
 * Canonical form: a node converted to JSON (jansson) with YAML 1.2 core-schema typing of plain
 * scalars (null, true/false, integers, floats; quoted scalars are always strings), dumped with
 * sorted keys and no whitespace. Its SHA-256 is the manifest's stable hash: key order, comments,
 * quoting style and indentation do not change it; any value does.
 *
 * Diff: two sets of manifests keyed by (kind, metadata.name) give added, removed and changed
 * manifests, and for changed ones the field paths with old and new values.
 */
#ifndef KANARIA_MANIFEST_H
#define KANARIA_MANIFEST_H

#include <jansson.h>
#include <stddef.h>

#include "kanaria/error.h"

/* ---- node tree -------------------------------------------------------------------------- */

enum kn_node_type {
    KN_NODE_SCALAR = 1,
    KN_NODE_MAP,
    KN_NODE_SEQ,
};

/* How a scalar reads under the YAML 1.2 core schema. Quoted, literal and folded scalars are
 * always KN_SCALAR_STR. */
enum kn_scalar_kind {
    KN_SCALAR_NULL = 1, /* ~, null, Null, NULL, or empty plain */
    KN_SCALAR_BOOL,     /* true/false in any of the three casings */
    KN_SCALAR_INT,      /* decimal, 0x hex, 0o octal, optional sign */
    KN_SCALAR_FLOAT,    /* decimal with . or exponent, .inf, .nan */
    KN_SCALAR_STR,
};

struct kn_pair;

/* One node. Owned by the struct kn_yaml it came from; never freed on its own. */
struct kn_node {
    enum kn_node_type type;
    struct kn_loc loc;          /* loc.file is borrowed from the owning struct kn_yaml */
    int quoted;                 /* scalar: was quoted, literal or folded (always a string) */
    char *scalar;               /* SCALAR: NUL-terminated value; never holds a NUL */
    size_t len;                 /* SCALAR: bytes in scalar; SEQ: items; MAP: pairs */
    struct kn_node **items;     /* SEQ */
    struct kn_pair *pairs;      /* MAP, in file order; keys are scalars and unique */
};

struct kn_pair {
    struct kn_node *key;
    struct kn_node *value;
};

/* Limits on one file. Zero fields take the defaults below. */
struct kn_yaml_limits {
    size_t max_bytes; /* KN_YAML_DEFAULT_MAX_BYTES */
    size_t max_nodes; /* counting the copies that aliases make; KN_YAML_DEFAULT_MAX_NODES */
    size_t max_depth; /* nesting of maps and sequences; KN_YAML_DEFAULT_MAX_DEPTH */
};

#define KN_YAML_DEFAULT_MAX_BYTES (1024 * 1024)
#define KN_YAML_DEFAULT_MAX_NODES 100000
#define KN_YAML_DEFAULT_MAX_DEPTH 64

/* One parsed file: its documents in order. An empty file has no documents; a document that is
 * only `---` has a root that is a NULL scalar. */
struct kn_yaml {
    char *file; /* owned; the name used in every node's loc.file */
    struct kn_node **docs;
    size_t ndocs;
    void *arena; /* private */
};

/*
 * Parse `len` bytes of YAML named `file` (a display name: usually the path relative to the
 * repository). On success *out is a new tree (free with kn_yaml_free). On failure returns
 * KN_EPARSE (syntax; err located at libyaml's problem mark), KN_ETOOBIG, KN_ELIMIT (alias
 * expansion or depth) or KN_EPARSE for a duplicate or non-scalar key or for a scalar holding a
 * NUL (an escaped "\0"), and *out is NULL.
 */
int kn_yaml_parse(struct kn_yaml **out, const char *file, const char *data, size_t len,
                  const struct kn_yaml_limits *limits, struct kn_error *err);

/* Read a file from disk and parse it; `display` names it in locations (NULL: path). */
int kn_yaml_load_file(struct kn_yaml **out, const char *path, const char *display,
                      const struct kn_yaml_limits *limits, struct kn_error *err);

void kn_yaml_free(struct kn_yaml *y);

/* The value of `key` in a MAP node, or NULL (also when map is NULL or not a MAP). */
const struct kn_node *kn_node_get(const struct kn_node *map, const char *key);

/* The pair whose key is `key`, or NULL: for the key's own location. */
const struct kn_pair *kn_node_get_pair(const struct kn_node *map, const char *key);

enum kn_scalar_kind kn_node_scalar_kind(const struct kn_node *n);

/* "a string", "a number", "a map", "a list", "null", "a boolean": for messages. */
const char *kn_node_describe(const struct kn_node *n);

/* ---- canonical form and hash -------------------------------------------------------------- */

/* The node as JSON (new reference; caller json_decref's). Integers that do not fit in
 * json_int_t become reals; .inf/.nan become the strings "inf"/"-inf"/"nan". */
json_t *kn_node_to_json(const struct kn_node *n);

/* Compact JSON with sorted keys (caller frees). The canonical text of a manifest. */
char *kn_json_canonical(const json_t *j);

/* Lowercase hex SHA-256 of kn_json_canonical(j) into out (65 bytes with the NUL). */
void kn_json_hash(const json_t *j, char out[65]);

/* ---- manifest kinds ------------------------------------------------------------------------ */

struct kn_schema;
struct kn_schema_ctx;

/* What a manifest kind is to the platform that takes it. */
enum kn_kind_role { KN_KIND_WORKLOAD = 1, KN_KIND_ROUTE, KN_KIND_OPEN };

/*
 * One manifest kind a platform type accepts, in the table of its descriptor
 * (kn_platform_type.kinds): loading an app refuses a document whose kind is in no entry, checks
 * each document against its entry, and counts the documents of each kind. Declared here, with
 * the model, because loading an app reads the table it is handed without knowing platforms.
 */
struct kn_manifest_kind {
    const char *kind;        /* "LocalService"; NULL: any kind no other entry names (role
                                KN_KIND_OPEN: kept with the app, hashed and diffed, not checked) */
    const char *api_version; /* "kanaria.dev/v1"; NULL: any */
    enum kn_kind_role role;
    const struct kn_schema *schema; /* closed schema of the whole document; NULL: open */
    int min;                 /* documents of this kind an app must have */
    int max;                 /* and may have; 0: no limit */
    const char *const *runtime_paths; /* dotted paths whose change changes what runs; NULL: every
                                         path; NULL-terminated. A change elsewhere (say
                                         spec.replicas) is planned as a quick sync. */
    const char *help;
    /*
     * A kind read from a file that the app's options name instead of from spec.manifests (an ECS
     * task definition): file_key is the key of spec.<type> holding the file's path
     * ("taskDefinitionFile"), relative to the app's folder. The file (YAML or JSON) holds one
     * map; `schema` or `check` checks it; the manifest is {"kind": kind, "metadata": {"name":
     * N}, "spec": <the map>}, N being the map's name_key member ("family"), or file_key when
     * name_key is NULL. NULL: a kind listed in spec.manifests.
     */
    const char *file_key;
    const char *name_key;
    /* A check of the document beyond (or instead of) a kn_schema table: located errors into
     * ctx (an AWS API input shape). NULL: none. */
    void (*check)(const struct kn_node *doc, struct kn_schema_ctx *ctx);
};

/* ---- diff --------------------------------------------------------------------------------- */

enum kn_change_op {
    KN_CHANGE_ADDED = 1,
    KN_CHANGE_REMOVED,
    KN_CHANGE_CHANGED,
};

/* One changed field: path like `spec.command[2]` or `metadata.labels["app.kubernetes.io/x"]`;
 * old and new values as compact JSON text, NULL when the field is absent on that side. */
struct kn_field_change {
    char *path;
    char *old_value;
    char *new_value;
};

struct kn_manifest_change {
    enum kn_change_op op;
    char *kind;
    char *name;
    struct kn_field_change *fields; /* CHANGED only; sorted by path */
    size_t nfields;
};

/* Caller-owned storage; release with kn_diff_release. Changes are sorted by (kind, name). */
struct kn_diff {
    struct kn_manifest_change *items;
    size_t count;
};

/*
 * Compare two JSON arrays of manifests (objects with "kind" and "metadata": {"name"}); either may
 * be NULL (an empty set). A manifest without kind or name is keyed by its position. Identical
 * sets give count 0. Returns 0 (KN_EINVAL when an argument is not an array).
 */
int kn_diff_manifests(struct kn_diff *out, const json_t *old_set, const json_t *new_set);

void kn_diff_release(struct kn_diff *d);

/* Human text, one line per change:
 *     ~ LocalService/hello
 *         spec.command[1]: "hello-1.4.1" -> "hello-1.4.2"
 *     + LocalService/extra
 *     - LocalService/gone
 * Returns a new string (caller frees); "" for an empty diff. */
char *kn_diff_format(const struct kn_diff *d);

/* [{"op":"changed","kind":..,"name":..,"fields":[{"path":..,"old":..,"new":..}]}, ...]
 * with old/new as JSON values (absent when absent). New reference. */
json_t *kn_diff_to_json(const struct kn_diff *d);

#endif /* KANARIA_MANIFEST_H */
