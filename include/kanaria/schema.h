/*
 * kanaria — schema tables.
 *
 * Every configuration section (kanaria.yaml, app.kanaria.yaml, each stage's `with:`, each
 * manifest kind) declares its keys once in a table of struct kn_field. The same table drives
 * parsing into a C struct, validation with located messages, defaults, and the reference docs
 * (`kanaria help config`). Unknown keys are errors that list the allowed ones.
 *
 * Parsing never stops at the first problem: every error in the input is added to a struct
 * kn_diags (capped), and the struct is filled with whatever was valid, so the caller decides by
 * `diags->count` whether to use it.
 */
#ifndef KANARIA_SCHEMA_H
#define KANARIA_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "kanaria/alloc.h"
#include "kanaria/error.h"
#include "kanaria/manifest.h"

enum kn_type {
    KN_TYPE_STRING = 1, /* char * (owned); any non-null scalar */
    KN_TYPE_BOOL,       /* int, 0 or 1 */
    KN_TYPE_INT,        /* long long */
    KN_TYPE_DOUBLE,     /* double; integers accepted */
    KN_TYPE_DURATION,   /* long long milliseconds: "500ms", "30s", "2m", "1h30m", "1d"; an
                           integer means seconds */
    KN_TYPE_PERCENT,    /* double: 20, "20" or "20%" */
    KN_TYPE_SCALE,      /* struct kn_scale: a count (3) or a percent of the primary ("20%") */
    KN_TYPE_ENUM,       /* int: index into `enums` */
    KN_TYPE_STRING_LIST, /* struct kn_strlist; a single scalar is not a list */
    KN_TYPE_STRING_MAP,  /* struct kn_strmap: scalar values only, keys in file order */
    KN_TYPE_OBJECT,      /* a nested struct at `offset`, described by `sub` */
    KN_TYPE_LIST,        /* struct kn_list of `sub` structs (sub->size bytes each) */
    KN_TYPE_NODE,        /* const struct kn_node * borrowed from the parsed file, for hooks */
};

#define KN_FIELD_REQUIRED 0x1u
#define KN_FIELD_MIN 0x2u      /* numbers, durations, percents: value >= min; lists: count >= min */
#define KN_FIELD_MAX 0x4u      /* numbers, durations, percents: value <= max */
#define KN_FIELD_NONEMPTY 0x8u /* strings, lists and maps must not be empty */

struct kn_schema;

struct kn_field {
    const char *key;
    enum kn_type type;
    size_t offset;
    unsigned flags;
    const char *def; /* default, written as it would be in YAML ("30s", "true", "main") */
    double min;
    double max;
    const char *const *enums;     /* ENUM: NULL-terminated list of the allowed values */
    const struct kn_schema *sub;  /* OBJECT and LIST */
    const char *help;             /* one line for the reference docs */
};

/* Where a value was found, kept for the checks that run after parsing. */
struct kn_schema_ctx;

/* Cross-field checks of one struct after its fields were parsed. `node` is the map it came from
 * (for locations); report problems with kn_schema_error. */
typedef void (*kn_schema_check_cb)(void *obj, const struct kn_node *node,
                                   struct kn_schema_ctx *ctx);
/* Free what a check hook allocated in obj (the fields themselves are freed by the schema). */
typedef void (*kn_schema_release_cb)(void *obj);
/* A key that is not in the table: 1 when the hook takes it (its value is the hook's to read),
 * 0 when it is an unknown key (the usual error, listing the table's keys). */
typedef int (*kn_schema_key_cb)(const struct kn_pair *pair, struct kn_schema_ctx *ctx);

/*
 * The schema of the keys of a map beyond its fixed `fields`, chosen by the values of those
 * fields once parsed: a `platforms[]` entry has `name` and `type`, and the rest are the keys of
 * that type (the type descriptor's own schema). Returns NULL when there is nothing to choose;
 * with a ctx it then reports why (an unknown type, at its key), unless the selecting field is
 * absent or wrong (its own error was reported already). kn_schema_release and
 * kn_schema_compare call it again with node and ctx NULL: it must answer the same from obj
 * alone, without reporting.
 */
typedef const struct kn_schema *(*kn_schema_variant_cb)(const void *obj,
                                                        const struct kn_node *node,
                                                        struct kn_schema_ctx *ctx);

struct kn_schema {
    const char *name; /* "LocalService spec", "stage 'WAIT'": for docs */
    const struct kn_field *fields;
    size_t nfields;
    size_t size;       /* sizeof the struct it fills */
    size_t set_offset; /* offset of a uint64_t: bit i set when fields[i] was given */
    kn_schema_check_cb check;
    kn_schema_release_cb release;
    kn_schema_key_cb other_key; /* NULL: every key not in fields is an error */
    /* Optional: the other keys of the map are parsed by the schema this returns, into a struct
     * of its size allocated at the `void *` at variant_offset (owned: kn_schema_release frees
     * it). An unknown key lists the allowed keys of both schemas. The check hook runs after
     * both are parsed. */
    kn_schema_variant_cb variant;
    size_t variant_offset;
    const char *variant_help; /* the reference row for those keys ("the keys of its type: ...") */
};

#define KN_SCHEMA_FIELDS(arr) (arr), (sizeof(arr) / sizeof((arr)[0]))

struct kn_strlist {
    char **items;
    size_t count;
};

struct kn_strmap {
    char **keys;
    char **values;
    size_t count;
};

struct kn_list {
    void *items; /* count structs of the element schema's size */
    size_t count;
};

struct kn_scale {
    double value;
    int percent; /* value is a percent of the primary's replicas */
};

/* Context for parsing and checks: where diagnostics go and how to name the subject. */
struct kn_schema_ctx {
    struct kn_diags *diags;
    const char *prefix; /* e.g. "stage 'TRAFFIC_ROUTING'"; NULL for none */
    char path[256];     /* key path of the current struct, e.g. "spec.healthCheck" */
    const struct kn_loc *where; /* where the current struct is (or would be): the location of
                                   errors about a node that is absent */
    void *data;         /* for the caller's hooks (e.g. the controller config) */
};

/*
 * Fill `obj` (zeroed by the caller, sizeof schema->size) from the MAP node `node`: defaults for
 * absent keys, every problem added to ctx->diags with its location. `node` may be NULL (nothing
 * given: defaults and required-key errors at `where`). Runs the schema's check hook (and those of
 * nested structs) after the fields. Release with kn_schema_release even on errors.
 */
void kn_schema_parse(const struct kn_schema *schema, const struct kn_node *node,
                     const struct kn_loc *where, void *obj, struct kn_schema_ctx *ctx);

/* Free what kn_schema_parse allocated in obj (not obj itself). */
void kn_schema_release(const struct kn_schema *schema, void *obj);

/* Whether `key` was given in the input (not defaulted). */
int kn_schema_isset(const struct kn_schema *schema, const void *obj, const char *key);

/*
 * Compare two structs parsed by `schema` field by field (and their variants). Returns 0 when
 * every value is the same, or 1 and the dotted path of the first key that differs in key
 * ("ports.max", "items[2]" when a list's length differs; cut to size). A string absent and an
 * empty one are the same; KN_TYPE_NODE values are compared as canonical JSON.
 */
int kn_schema_compare(const struct kn_schema *schema, const void *a, const void *b, char *key,
                      size_t size);

/* Add "file:line:col: [prefix: ]message" for node (NULL: no location) to ctx->diags. */
void kn_schema_error(struct kn_schema_ctx *ctx, const struct kn_node *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like kn_schema_error, with `subject` (usually ctx->path, "platforms[1]") after the context's
 * prefix: "kanaria.yaml:12:7: platforms[1]: 'socket' is required when 'managed' is false". */
void kn_schema_error_in(struct kn_schema_ctx *ctx, const char *subject,
                        const struct kn_node *node, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Like kn_schema_error, at a given location. */
void kn_schema_error_at(struct kn_schema_ctx *ctx, const struct kn_loc *loc, const char *fmt,
                        ...) __attribute__((format(printf, 3, 4)));

/* ---- value parsers shared with the rest of the code ------------------------------------- */

/* "1h30m", "500ms", "30s", "2m", "1d", or digits (seconds). 0 or KN_EINVAL. */
int kn_duration_parse(const char *s, long long *ms);

/* Shortest readable form: "1h30m", "500ms", "0s". */
const char *kn_duration_format(long long ms, char *buf, size_t size);

/* "20", "20%", "12.5%". 0 or KN_EINVAL. */
int kn_percent_parse(const char *s, double *out);

/* "127.0.0.1:8080", "localhost:80", "[::1]:7070", ":8080" (all addresses). Host into host
 * (without brackets; "" for all), port 1-65535. 0 or KN_EINVAL. */
int kn_hostport_parse(const char *s, char *host, size_t host_size, int *port);

/* A field's type as the reference docs name it ("duration", "list of maps"); static. */
const char *kn_schema_type_name(const struct kn_field *f);

/* Reference text of a schema (Markdown table rows, nested structs expanded under `prefix`),
 * appended to buf. */
void kn_schema_describe(const struct kn_schema *schema, const char *prefix, struct kn_buf *buf);

#endif /* KANARIA_SCHEMA_H */
