/*
 * kanaria — YAML to a located node tree (the node part of include/kanaria/manifest.h).
 *
 * libyaml's event parser drives a small stack machine: a collection start pushes a frame, its
 * children pile up on one shared `pending` stack, and the collection end moves them into an
 * array of the exact size. Every node, array and string lives in an arena owned by the
 * struct kn_yaml (which itself lives there too), so freeing a tree is freeing a few chunks.
 *
 * Aliases are resolved by copying the anchored subtree. The size and height of each anchored
 * subtree are recorded when its anchor is registered, so an alias that would pass max_nodes or
 * max_depth fails before anything is copied: a "billion laughs" file costs at most max_nodes
 * node copies.
 */
#include "kanaria/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "kanaria/alloc.h"
#include "kanaria/error.h"

/* ---- arena ------------------------------------------------------------------------------- */

#define KN_ARENA_MIN_CHUNK 4096
#define KN_ARENA_MAX_CHUNK (1024 * 1024)

struct kn_arena_chunk {
    struct kn_arena_chunk *next;
    size_t cap;
    size_t used;
    max_align_t data[]; /* cap bytes, aligned for anything */
};

struct kn_arena {
    struct kn_arena_chunk *head; /* the chunk being filled; older and oversized ones follow */
    size_t next_cap;
};

static struct kn_arena_chunk *kn_arena_chunk_new(size_t cap)
{
    struct kn_arena_chunk *c = kn_malloc(sizeof(*c) + cap);
    c->next = NULL;
    c->cap = cap;
    c->used = 0;
    return c;
}

/* The arena's own header is the first thing in its first chunk. */
static struct kn_arena *kn_arena_new(size_t first_cap)
{
    struct kn_arena_chunk *c = kn_arena_chunk_new(first_cap);
    struct kn_arena *a = (struct kn_arena *)(void *)c->data;
    c->used = sizeof(*a);
    a->head = c;
    a->next_cap = first_cap < KN_ARENA_MAX_CHUNK / 2 ? first_cap * 2 : KN_ARENA_MAX_CHUNK;
    return a;
}

static void kn_arena_free(struct kn_arena *a)
{
    struct kn_arena_chunk *c = a ? a->head : NULL;
    while (c) {
        struct kn_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
}

/* `align` is a power of two no larger than max_align_t's alignment. */
static void *kn_arena_alloc(struct kn_arena *a, size_t size, size_t align)
{
    struct kn_arena_chunk *c = a->head;
    size_t off = (c->used + align - 1) & ~(align - 1);

    if (off > c->cap || size > c->cap - off) {
        if (size >= a->next_cap / 4) {
            /* Large: a chunk of its own behind the head, so the head keeps its free space. */
            c = kn_arena_chunk_new(size);
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c = kn_arena_chunk_new(a->next_cap);
            c->next = a->head;
            a->head = c;
            if (a->next_cap < KN_ARENA_MAX_CHUNK) {
                a->next_cap *= 2;
            }
        }
        off = 0;
    }
    c->used = off + size;
    return (char *)c->data + off;
}

static char *kn_arena_strndup(struct kn_arena *a, const char *s, size_t len)
{
    char *d = kn_arena_alloc(a, len + 1, 1);
    if (len) {
        memcpy(d, s, len);
    }
    d[len] = '\0';
    return d;
}

/* ---- parser state ------------------------------------------------------------------------ */

/* An open map or sequence. */
struct kn_yframe {
    struct kn_node *node;
    size_t base;         /* its first child's index in `pending` */
    size_t nodes_before; /* the node count before this collection was started */
    size_t height;       /* the tallest child so far (a scalar is 0) */
    const char *anchor;  /* arena copy, or NULL */
};

struct kn_yanchor {
    const char *name; /* arena copy; NULL marks an empty slot */
    uint64_t hash;
    const struct kn_node *node;
    size_t nodes;  /* nodes in the subtree */
    size_t height; /* nesting levels in the subtree */
};

struct kn_yparser {
    struct kn_yaml *y;
    struct kn_arena *arena;
    struct kn_error *err;
    size_t max_nodes;
    size_t max_depth;
    size_t nodes;

    struct kn_yframe *frames;
    size_t nframes;
    size_t frames_cap;

    struct kn_node **pending;
    size_t npending;
    size_t pending_cap;

    struct kn_node *root; /* of the current document */
    struct kn_node **docs;
    size_t ndocs;
    size_t docs_cap;

    struct kn_yanchor *anchors; /* open addressing, power-of-two size; per document */
    size_t anchors_cap;
    size_t nanchors;

    size_t *keyset; /* scratch hash set for the duplicate-key check of large maps */
    size_t keyset_cap;
};

static int kn_yerr(struct kn_yparser *p, int code, unsigned line, unsigned col, const char *fmt,
                   ...) __attribute__((format(printf, 5, 6)));

static int kn_yerr(struct kn_yparser *p, int code, unsigned line, unsigned col, const char *fmt,
                   ...)
{
    struct kn_loc loc = {.file = p->y->file, .line = line, .col = col};
    char msg[KN_ERROR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return kn_error_set(p->err, code, &loc, "%s", msg);
}

static unsigned kn_yline(const yaml_mark_t *m)
{
    return (unsigned)m->line + 1;
}

static unsigned kn_ycol(const yaml_mark_t *m)
{
    return (unsigned)m->column + 1;
}

static uint64_t kn_yhash(const char *s, size_t len)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static struct kn_node *kn_ynode(struct kn_yparser *p, enum kn_node_type type, const yaml_mark_t *m)
{
    struct kn_node *n = kn_arena_alloc(p->arena, sizeof(*n), _Alignof(struct kn_node));
    n->type = type;
    n->loc.file = p->y->file;
    n->loc.line = kn_yline(m);
    n->loc.col = kn_ycol(m);
    n->quoted = 0;
    n->scalar = NULL;
    n->len = 0;
    n->items = NULL;
    n->pairs = NULL;
    return n;
}

/* Account for `count` more nodes, failing with KN_ELIMIT when that passes max_nodes. */
static int kn_ycount(struct kn_yparser *p, size_t count, const yaml_mark_t *m)
{
    int rc = 0;

    if (count > p->max_nodes - p->nodes) {
        rc = kn_yerr(p, KN_ELIMIT, kn_yline(m), kn_ycol(m), "more than %zu nodes", p->max_nodes);
    } else {
        p->nodes += count;
    }
    return rc;
}

/* ---- anchors ----------------------------------------------------------------------------- */

static void kn_yanchors_clear(struct kn_yparser *p)
{
    if (p->anchors) {
        memset(p->anchors, 0, p->anchors_cap * sizeof(*p->anchors));
    }
    p->nanchors = 0;
}

static struct kn_yanchor *kn_yanchor_slot(struct kn_yanchor *tab, size_t cap, const char *name,
                                          uint64_t hash)
{
    size_t i = (size_t)hash & (cap - 1);
    while (tab[i].name && (tab[i].hash != hash || strcmp(tab[i].name, name) != 0)) {
        i = (i + 1) & (cap - 1);
    }
    return &tab[i];
}

static const struct kn_yanchor *kn_yanchor_get(const struct kn_yparser *p, const char *name)
{
    const struct kn_yanchor *a = NULL;

    if (p->nanchors) {
        a = kn_yanchor_slot(p->anchors, p->anchors_cap, name, kn_yhash(name, strlen(name)));
        a = a->name ? a : NULL;
    }
    return a;
}

/* Register (or redefine, as YAML allows) an anchor; `name` must live in the arena. */
static void kn_yanchor_put(struct kn_yparser *p, const char *name, const struct kn_node *node,
                           size_t nodes, size_t height)
{
    uint64_t hash = kn_yhash(name, strlen(name));

    if ((p->nanchors + 1) * 2 > p->anchors_cap) {
        size_t cap = p->anchors_cap ? p->anchors_cap * 2 : 16;
        struct kn_yanchor *tab = kn_calloc(cap, sizeof(*tab));
        for (size_t i = 0; i < p->anchors_cap; i++) {
            if (p->anchors[i].name) {
                *kn_yanchor_slot(tab, cap, p->anchors[i].name, p->anchors[i].hash) = p->anchors[i];
            }
        }
        free(p->anchors);
        p->anchors = tab;
        p->anchors_cap = cap;
    }
    struct kn_yanchor *a = kn_yanchor_slot(p->anchors, p->anchors_cap, name, hash);
    if (!a->name) {
        p->nanchors++;
    }
    a->name = name;
    a->hash = hash;
    a->node = node;
    a->nodes = nodes;
    a->height = height;
}

/* A deep copy of src; the caller has already counted its nodes. Strings are shared: they are
 * never changed and live as long as the copy. */
static struct kn_node *kn_ycopy(struct kn_yparser *p, const struct kn_node *src)
{
    struct kn_node *n = kn_arena_alloc(p->arena, sizeof(*n), _Alignof(struct kn_node));

    *n = *src;
    if (src->type == KN_NODE_SEQ && src->len) {
        n->items = kn_arena_alloc(p->arena, src->len * sizeof(*n->items), _Alignof(void *));
        for (size_t i = 0; i < src->len; i++) {
            n->items[i] = kn_ycopy(p, src->items[i]);
        }
    } else if (src->type == KN_NODE_MAP && src->len) {
        n->pairs = kn_arena_alloc(p->arena, src->len * sizeof(*n->pairs), _Alignof(struct kn_pair));
        for (size_t i = 0; i < src->len; i++) {
            n->pairs[i].key = kn_ycopy(p, src->pairs[i].key);
            n->pairs[i].value = kn_ycopy(p, src->pairs[i].value);
        }
    }
    return n;
}

/* ---- building the tree ------------------------------------------------------------------- */

static int kn_ykey_equal(const struct kn_node *a, const struct kn_node *b)
{
    return a->len == b->len && memcmp(a->scalar, b->scalar, a->len) == 0;
}

/* The key as it goes into a message: at most 100 bytes, control characters as '?'
 * so that a message stays one line. */
static int kn_ydup_error(struct kn_yparser *p, const struct kn_node *key,
                         const struct kn_node *first)
{
    char shown[101];
    size_t n = key->len < sizeof(shown) - 1 ? key->len : sizeof(shown) - 1;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key->scalar[i];
        shown[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    shown[n] = '\0';
    return kn_yerr(p, KN_EPARSE, key->loc.line, key->loc.col,
                   "duplicate key '%s' (first at line %u)", shown, first->loc.line);
}

/* Keys are compared by their text, so `1` and "1" collide: they are the same key in JSON. */
static int kn_ycheck_dups(struct kn_yparser *p, const struct kn_node *map)
{
    int rc = 0;
    const struct kn_pair *pairs = map->pairs;

    if (map->len <= 8) {
        for (size_t i = 1; i < map->len; i++) {
            for (size_t j = 0; j < i; j++) {
                if (kn_ykey_equal(pairs[i].key, pairs[j].key)) {
                    rc = kn_ydup_error(p, pairs[i].key, pairs[j].key);
                    goto out;
                }
            }
        }
        goto out;
    }

    size_t cap = 16;
    while (cap < map->len * 2) {
        cap *= 2;
    }
    if (cap > p->keyset_cap) {
        free(p->keyset);
        p->keyset = kn_reallocarray(NULL, cap, sizeof(*p->keyset));
        p->keyset_cap = cap;
    }
    memset(p->keyset, 0xff, cap * sizeof(*p->keyset)); /* SIZE_MAX: empty */
    for (size_t i = 0; i < map->len; i++) {
        const struct kn_node *key = pairs[i].key;
        size_t slot = (size_t)kn_yhash(key->scalar, key->len) & (cap - 1);
        while (p->keyset[slot] != SIZE_MAX) {
            if (kn_ykey_equal(key, pairs[p->keyset[slot]].key)) {
                rc = kn_ydup_error(p, key, pairs[p->keyset[slot]].key);
                goto out;
            }
            slot = (slot + 1) & (cap - 1);
        }
        p->keyset[slot] = i;
    }
out:
    return rc;
}

static int kn_yin_key_position(const struct kn_yparser *p)
{
    const struct kn_yframe *f = p->nframes ? &p->frames[p->nframes - 1] : NULL;
    return f && f->node->type == KN_NODE_MAP && (p->npending - f->base) % 2 == 0;
}

static const char *kn_ytype_name(enum kn_node_type type)
{
    return type == KN_NODE_MAP ? "a map" : type == KN_NODE_SEQ ? "a list" : "a scalar";
}

/* A finished node goes to its parent collection, or becomes the document's root. */
static int kn_yadd(struct kn_yparser *p, struct kn_node *n, size_t height)
{
    int rc = 0;

    if (p->nframes == 0) {
        p->root = n;
        goto out;
    }
    if (kn_yin_key_position(p)) {
        if (n->type != KN_NODE_SCALAR) {
            rc = kn_yerr(p, KN_EPARSE, n->loc.line, n->loc.col, "map keys must be scalars, not %s",
                         kn_ytype_name(n->type));
            goto out;
        }
        if (!n->quoted && n->len == 2 && memcmp(n->scalar, "<<", 2) == 0) {
            rc =
                kn_yerr(p, KN_EPARSE, n->loc.line, n->loc.col, "merge keys '<<' are not supported");
            goto out;
        }
    }
    if (p->npending == p->pending_cap) {
        p->pending_cap = p->pending_cap ? p->pending_cap * 2 : 64;
        p->pending = kn_reallocarray(p->pending, p->pending_cap, sizeof(*p->pending));
    }
    p->pending[p->npending++] = n;
    struct kn_yframe *f = &p->frames[p->nframes - 1];
    if (height > f->height) {
        f->height = height;
    }
out:
    return rc;
}

static int kn_yscalar(struct kn_yparser *p, const yaml_event_t *ev)
{
    int rc;
    const char *tag = (const char *)ev->data.scalar.tag;

    if ((rc = kn_ycount(p, 1, &ev->start_mark)) < 0) {
        goto out;
    }
    /* Every consumer reads a scalar as a C string, so an escaped NUL ("\0", "\x00", "\u0000")
     * would cut it short without a word. */
    if (ev->data.scalar.length && memchr(ev->data.scalar.value, '\0', ev->data.scalar.length)) {
        rc = kn_yerr(p, KN_EPARSE, kn_yline(&ev->start_mark), kn_ycol(&ev->start_mark),
                     "a string may not contain a NUL character (\"\\0\")");
        goto out;
    }
    struct kn_node *n = kn_ynode(p, KN_NODE_SCALAR, &ev->start_mark);
    n->len = ev->data.scalar.length;
    n->scalar = kn_arena_strndup(p->arena, (const char *)ev->data.scalar.value, n->len);
    /* Quoted, literal and folded scalars are strings; so are plain ones tagged `!!str` or with
     * the non-specific `!`. Other tags are ignored: the value is typed by how it reads. */
    n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
                (tag && (strcmp(tag, YAML_STR_TAG) == 0 || strcmp(tag, "!") == 0));
    if (ev->data.scalar.anchor) {
        const char *anchor = (const char *)ev->data.scalar.anchor;
        kn_yanchor_put(p, kn_arena_strndup(p->arena, anchor, strlen(anchor)), n, 1, 0);
    }
    rc = kn_yadd(p, n, 0);
out:
    return rc;
}

static int kn_ystart(struct kn_yparser *p, const yaml_event_t *ev, enum kn_node_type type,
                     const yaml_char_t *anchor)
{
    int rc = 0;
    const yaml_mark_t *m = &ev->start_mark;

    if (kn_yin_key_position(p)) {
        rc = kn_yerr(p, KN_EPARSE, kn_yline(m), kn_ycol(m), "map keys must be scalars, not %s",
                     kn_ytype_name(type));
        goto out;
    }
    if (p->nframes >= p->max_depth) {
        rc = kn_yerr(p, KN_ELIMIT, kn_yline(m), kn_ycol(m), "nesting deeper than %zu levels",
                     p->max_depth);
        goto out;
    }
    size_t nodes_before = p->nodes;
    if ((rc = kn_ycount(p, 1, m)) < 0) {
        goto out;
    }
    if (p->nframes == p->frames_cap) {
        p->frames_cap = p->frames_cap ? p->frames_cap * 2 : 16;
        p->frames = kn_reallocarray(p->frames, p->frames_cap, sizeof(*p->frames));
    }
    struct kn_yframe *f = &p->frames[p->nframes++];
    f->node = kn_ynode(p, type, m);
    f->base = p->npending;
    f->nodes_before = nodes_before;
    f->height = 0;
    f->anchor = anchor
                    ? kn_arena_strndup(p->arena, (const char *)anchor, strlen((const char *)anchor))
                    : NULL;
out:
    return rc;
}

static int kn_yend(struct kn_yparser *p)
{
    int rc = 0;
    struct kn_yframe f = p->frames[--p->nframes];
    struct kn_node *n = f.node;
    size_t count = p->npending - f.base;
    /* `pending` is still NULL when no node has been added yet (`[ ]` alone): no arithmetic on it
     * then, not even + 0. */
    struct kn_node **children = count ? p->pending + f.base : NULL;

    if (n->type == KN_NODE_MAP) {
        n->len = count / 2;
        if (n->len) {
            n->pairs =
                kn_arena_alloc(p->arena, n->len * sizeof(*n->pairs), _Alignof(struct kn_pair));
        }
        for (size_t i = 0; i < n->len; i++) {
            n->pairs[i].key = children[2 * i];
            n->pairs[i].value = children[2 * i + 1];
        }
        if ((rc = kn_ycheck_dups(p, n)) < 0) {
            goto out;
        }
    } else {
        n->len = count;
        if (n->len) {
            n->items = kn_arena_alloc(p->arena, count * sizeof(*n->items), _Alignof(void *));
            memcpy(n->items, children, count * sizeof(*n->items));
        }
    }
    p->npending = f.base;
    if (f.anchor) {
        kn_yanchor_put(p, f.anchor, n, p->nodes - f.nodes_before, f.height + 1);
    }
    rc = kn_yadd(p, n, f.height + 1);
out:
    return rc;
}

static int kn_yalias(struct kn_yparser *p, const yaml_event_t *ev)
{
    int rc = 0;
    const char *name = (const char *)ev->data.alias.anchor;
    const yaml_mark_t *m = &ev->start_mark;
    const struct kn_yanchor *a = kn_yanchor_get(p, name);

    if (!a) {
        const char *why = "undefined alias";
        for (size_t i = 0; i < p->nframes; i++) {
            if (p->frames[i].anchor && strcmp(p->frames[i].anchor, name) == 0) {
                why = "recursive alias";
            }
        }
        rc = kn_yerr(p, KN_EPARSE, kn_yline(m), kn_ycol(m), "%s '*%s'", why, name);
        goto out;
    }
    if (a->height > p->max_depth - p->nframes) {
        rc = kn_yerr(p, KN_ELIMIT, kn_yline(m), kn_ycol(m),
                     "alias '*%s' nests deeper than %zu levels", name, p->max_depth);
        goto out;
    }
    if (a->nodes > p->max_nodes - p->nodes) {
        rc = kn_yerr(p, KN_ELIMIT, kn_yline(m), kn_ycol(m),
                     "alias '*%s' expands past the limit of %zu nodes", name, p->max_nodes);
        goto out;
    }
    p->nodes += a->nodes;
    struct kn_node *n = kn_ycopy(p, a->node);
    /* The copy's root is where the alias is used; its insides stay where they were written. */
    n->loc.line = kn_yline(m);
    n->loc.col = kn_ycol(m);
    rc = kn_yadd(p, n, a->height);
out:
    return rc;
}

static int kn_yevent(struct kn_yparser *p, const yaml_event_t *ev)
{
    int rc = 0;

    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        kn_yanchors_clear(p); /* anchors do not cross documents */
        p->root = NULL;
        break;
    case YAML_DOCUMENT_END_EVENT:
        if (p->ndocs == p->docs_cap) {
            p->docs_cap = p->docs_cap ? p->docs_cap * 2 : 4;
            p->docs = kn_reallocarray(p->docs, p->docs_cap, sizeof(*p->docs));
        }
        p->docs[p->ndocs++] = p->root;
        break;
    case YAML_SCALAR_EVENT:
        rc = kn_yscalar(p, ev);
        break;
    case YAML_SEQUENCE_START_EVENT:
        rc = kn_ystart(p, ev, KN_NODE_SEQ, ev->data.sequence_start.anchor);
        break;
    case YAML_MAPPING_START_EVENT:
        rc = kn_ystart(p, ev, KN_NODE_MAP, ev->data.mapping_start.anchor);
        break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        rc = kn_yend(p);
        break;
    case YAML_ALIAS_EVENT:
        rc = kn_yalias(p, ev);
        break;
    case YAML_STREAM_END_EVENT:
        if (p->ndocs) {
            p->y->docs = kn_arena_alloc(p->arena, p->ndocs * sizeof(*p->y->docs), _Alignof(void *));
            memcpy(p->y->docs, p->docs, p->ndocs * sizeof(*p->y->docs));
        }
        p->y->ndocs = p->ndocs;
        break;
    default:
        break;
    }
    return rc;
}

/* Translate a libyaml failure, located where libyaml saw the problem. */
static int kn_ysyntax_error(struct kn_yparser *p, const yaml_parser_t *parser, const char *data,
                            size_t len)
{
    int rc;
    const char *problem = parser->problem ? parser->problem : "cannot parse";

    switch (parser->error) {
    case YAML_MEMORY_ERROR:
        rc = kn_yerr(p, KN_ENOMEM, 0, 0, "out of memory");
        break;
    case YAML_READER_ERROR: {
        /* Encoding problems come with a byte offset instead of a mark. */
        unsigned line = 1;
        size_t line_start = 0;
        size_t end = parser->problem_offset < len ? parser->problem_offset : len;
        for (size_t i = 0; i < end; i++) {
            if (data[i] == '\n') {
                line++;
                line_start = i + 1;
            }
        }
        unsigned col = (unsigned)(end - line_start) + 1;
        if (parser->problem_value >= 0) {
            rc = kn_yerr(p, KN_EPARSE, line, col, "%s 0x%02x", problem, parser->problem_value);
        } else {
            rc = kn_yerr(p, KN_EPARSE, line, col, "%s", problem);
        }
        break;
    }
    case YAML_SCANNER_ERROR:
    case YAML_PARSER_ERROR:
    default:
        rc = kn_yerr(p, KN_EPARSE, kn_yline(&parser->problem_mark), kn_ycol(&parser->problem_mark),
                     "%s", problem);
        break;
    }
    return rc;
}

static void kn_ylimits(const struct kn_yaml_limits *in, struct kn_yaml_limits *out)
{
    out->max_bytes = in && in->max_bytes ? in->max_bytes : KN_YAML_DEFAULT_MAX_BYTES;
    out->max_nodes = in && in->max_nodes ? in->max_nodes : KN_YAML_DEFAULT_MAX_NODES;
    out->max_depth = in && in->max_depth ? in->max_depth : KN_YAML_DEFAULT_MAX_DEPTH;
}

/* A first chunk that holds a typical manifest's tree without a second one (about 6 bytes of
 * tree per byte of YAML). */
static size_t kn_yarena_size(size_t len)
{
    size_t size = KN_ARENA_MAX_CHUNK;
    if (len < (KN_ARENA_MAX_CHUNK - 2048) / 6) {
        size = len * 6 + 2048;
    }
    return size < KN_ARENA_MIN_CHUNK ? KN_ARENA_MIN_CHUNK : size;
}

int kn_yaml_parse(struct kn_yaml **out, const char *file, const char *data, size_t len,
                  const struct kn_yaml_limits *limits, struct kn_error *err)
{
    int rc = 0;
    struct kn_yaml_limits lim;
    struct kn_yparser p;
    yaml_parser_t parser;
    int parser_ready = 0;
    struct kn_arena *arena = NULL;

    *out = NULL;
    memset(&p, 0, sizeof(p));
    kn_ylimits(limits, &lim);
    file = file ? file : "<input>";
    data = data ? data : "";
    if (len > lim.max_bytes) {
        struct kn_loc loc = {.file = file, .line = 0, .col = 0};
        rc = kn_error_set(err, KN_ETOOBIG, &loc, "file is %zu bytes, more than the limit of %zu",
                          len, lim.max_bytes);
        goto out;
    }

    arena = kn_arena_new(kn_yarena_size(len));
    struct kn_yaml *y = kn_arena_alloc(arena, sizeof(*y), _Alignof(struct kn_yaml));
    y->file = kn_arena_strndup(arena, file, strlen(file));
    y->docs = NULL;
    y->ndocs = 0;
    y->arena = arena;
    p.y = y;
    p.arena = arena;
    p.err = err;
    p.max_nodes = lim.max_nodes;
    p.max_depth = lim.max_depth;

    if (!yaml_parser_initialize(&parser)) {
        rc = kn_yerr(&p, KN_ENOMEM, 0, 0, "out of memory");
        goto out;
    }
    parser_ready = 1;
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = kn_ysyntax_error(&p, &parser, data, len);
            goto out;
        }
        yaml_event_type_t type = ev.type;
        rc = kn_yevent(&p, &ev);
        yaml_event_delete(&ev);
        if (rc < 0 || type == YAML_STREAM_END_EVENT) {
            break;
        }
    }
    if (rc == 0) {
        *out = y;
    }
out:
    if (parser_ready) {
        yaml_parser_delete(&parser);
    }
    free(p.frames);
    free(p.pending);
    free(p.docs);
    free(p.anchors);
    free(p.keyset);
    if (rc < 0) {
        kn_arena_free(arena);
    }
    return rc;
}

int kn_yaml_load_file(struct kn_yaml **out, const char *path, const char *display,
                      const struct kn_yaml_limits *limits, struct kn_error *err)
{
    int rc = 0;
    int fd = -1;
    char *buf = NULL;
    size_t len = 0;
    struct kn_yaml_limits lim;
    struct kn_loc loc = {.file = display ? display : path, .line = 0, .col = 0};
    struct stat st;

    *out = NULL;
    kn_ylimits(limits, &lim);
    /* Read at most one byte past the limit: enough to know the file is too big. */
    size_t max = lim.max_bytes < SIZE_MAX - 1 ? lim.max_bytes : SIZE_MAX - 2;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            rc = kn_error_set(err, KN_ENOENT, &loc, "%s", kn_strerror(KN_ENOENT));
        } else {
            rc = kn_error_set(err, KN_EIO, &loc, "cannot open: %s", strerror(errno));
        }
        goto out;
    }
    size_t cap = 4096;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        if ((unsigned long long)st.st_size > max) {
            rc = kn_error_set(err, KN_ETOOBIG, &loc,
                              "file is %lld bytes, more than the limit of %zu",
                              (long long)st.st_size, max);
            goto out;
        }
        cap = (size_t)st.st_size + 1; /* the extra byte sees a file that grew */
    }
    cap = cap < max + 1 ? cap : max + 1;
    buf = kn_malloc(cap);
    while (len < max + 1) {
        if (len == cap) {
            cap = cap < (max + 1) / 2 ? cap * 2 : max + 1;
            buf = kn_realloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = kn_error_set(err, KN_EIO, &loc, "cannot read: %s", strerror(errno));
            goto out;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    if (len > max) {
        rc = kn_error_set(err, KN_ETOOBIG, &loc, "file is more than the limit of %zu bytes", max);
        goto out;
    }
    rc = kn_yaml_parse(out, loc.file, buf, len, limits, err);
out:
    if (fd >= 0) {
        close(fd);
    }
    free(buf);
    return rc;
}

void kn_yaml_free(struct kn_yaml *y)
{
    if (y) {
        kn_arena_free(y->arena);
    }
}

/* ---- queries ----------------------------------------------------------------------------- */

const struct kn_pair *kn_node_get_pair(const struct kn_node *map, const char *key)
{
    const struct kn_pair *found = NULL;

    if (!map || map->type != KN_NODE_MAP || !key) {
        goto out;
    }
    size_t len = strlen(key);
    for (size_t i = 0; i < map->len; i++) {
        const struct kn_node *k = map->pairs[i].key;
        if (k->len == len && memcmp(k->scalar, key, len) == 0) {
            found = &map->pairs[i];
            break;
        }
    }
out:
    return found;
}

const struct kn_node *kn_node_get(const struct kn_node *map, const char *key)
{
    const struct kn_pair *pair = kn_node_get_pair(map, key);
    return pair ? pair->value : NULL;
}

static int kn_yis(const char *s, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

static int kn_ydigits(const char *s, size_t len, size_t *i, const char *set)
{
    size_t start = *i;
    while (*i < len && s[*i] && strchr(set, s[*i])) {
        (*i)++;
    }
    return *i > start;
}

#define KN_YDEC "0123456789"
#define KN_YOCT "01234567"
#define KN_YHEX "0123456789abcdefABCDEF"

/* [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+ (the core schema signs decimals only) */
static int kn_yis_int(const char *s, size_t len)
{
    size_t i = 0;
    const char *set = KN_YDEC;

    if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
        set = s[1] == 'x' ? KN_YHEX : KN_YOCT;
        i = 2;
    } else if (len > 0 && (s[0] == '-' || s[0] == '+')) {
        i = 1;
    }
    return kn_ydigits(s, len, &i, set) && i == len;
}

static int kn_yis_inf_nan(const char *s, size_t len)
{
    size_t i = len > 0 && (s[0] == '-' || s[0] == '+') ? 1 : 0;

    return kn_yis(s, len, ".nan") || kn_yis(s, len, ".NaN") || kn_yis(s, len, ".NAN") ||
           kn_yis(s + i, len - i, ".inf") || kn_yis(s + i, len - i, ".Inf") ||
           kn_yis(s + i, len - i, ".INF");
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? | [-+]?\.(inf|Inf|INF) | \.(nan|NaN|NAN) */
static int kn_yis_float(const char *s, size_t len)
{
    size_t i = len > 0 && (s[0] == '-' || s[0] == '+') ? 1 : 0;
    int ok = 0;

    if (kn_yis_inf_nan(s, len)) {
        ok = 1;
        goto out;
    }
    int before = kn_ydigits(s, len, &i, KN_YDEC);
    int after = 0;
    if (i < len && s[i] == '.') {
        i++;
        after = kn_ydigits(s, len, &i, KN_YDEC);
    }
    if (!before && !after) {
        goto out;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '-' || s[i] == '+')) {
            i++;
        }
        if (!kn_ydigits(s, len, &i, KN_YDEC)) {
            goto out;
        }
    }
    ok = i == len;
out:
    return ok;
}

enum kn_scalar_kind kn_node_scalar_kind(const struct kn_node *n)
{
    enum kn_scalar_kind kind = KN_SCALAR_STR;

    if (!n) {
        kind = KN_SCALAR_NULL;
        goto out;
    }
    if (n->type != KN_NODE_SCALAR || n->quoted) {
        goto out;
    }
    const char *s = n->scalar;
    size_t len = n->len;
    if (len == 0 || kn_yis(s, len, "~") || kn_yis(s, len, "null") || kn_yis(s, len, "Null") ||
        kn_yis(s, len, "NULL")) {
        kind = KN_SCALAR_NULL;
    } else if (kn_yis(s, len, "true") || kn_yis(s, len, "True") || kn_yis(s, len, "TRUE") ||
               kn_yis(s, len, "false") || kn_yis(s, len, "False") || kn_yis(s, len, "FALSE")) {
        kind = KN_SCALAR_BOOL;
    } else if (kn_yis_int(s, len)) {
        kind = KN_SCALAR_INT;
    } else if (kn_yis_float(s, len)) {
        kind = KN_SCALAR_FLOAT;
    }
out:
    return kind;
}

const char *kn_node_describe(const struct kn_node *n)
{
    const char *what = "a string";

    if (n && n->type == KN_NODE_MAP) {
        what = "a map";
    } else if (n && n->type == KN_NODE_SEQ) {
        what = "a list";
    } else {
        switch (kn_node_scalar_kind(n)) {
        case KN_SCALAR_NULL:
            what = "null";
            break;
        case KN_SCALAR_BOOL:
            what = "a boolean";
            break;
        case KN_SCALAR_INT:
        case KN_SCALAR_FLOAT:
            what = "a number";
            break;
        case KN_SCALAR_STR:
        default:
            break;
        }
    }
    return what;
}
