/*
 * kanaria — diff of two sets of manifests.
 *
 * Each set is turned into a list of entries keyed by (kind, metadata.name), sorted, and the two
 * lists are merged: a key on one side only is added or removed, a key on both sides whose
 * documents differ is changed, with its fields found by a structural walk. Fields come out in
 * walk order, which is the order of their paths taken part by part: object keys in byte order,
 * array indexes by number (so `args[2]` comes before `args[10]`).
 *
 * Two manifests with the same key in one set (which validation rejects, but a diff must not
 * crash on) are paired up in the order they appear.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/manifest.h"

_Noreturn static void kn_diff_die(const char *what)
{
    fprintf(stderr, "kanaria: fatal: %s\n", what);
    abort();
}

static json_t *kn_diff_must(json_t *j)
{
    if (!j) {
        kn_diff_die("out of memory building JSON");
    }
    return j;
}

static void kn_diff_set(json_t *obj, const char *key, json_t *value)
{
    if (json_object_set_new(obj, key, kn_diff_must(value)) < 0) {
        kn_diff_die("out of memory building JSON");
    }
}

/* ---- keys ---------------------------------------------------------------------------------- */

/* One manifest of a set and what it is known by. */
struct kn_diff_entry {
    const char *kind;  /* borrowed from the document; "" when it has none */
    const char *name;  /* borrowed; NULL when keyed by position */
    size_t index;      /* position in its set */
    size_t occurrence; /* how many earlier entries of the set have the same key */
    const json_t *doc;
};

static int kn_diff_cmp_size(size_t a, size_t b)
{
    return (a > b) - (a < b);
}

/* The key without the occurrence: kind, then named before positional, then name or index. */
static int kn_diff_cmp_key(const struct kn_diff_entry *a, const struct kn_diff_entry *b)
{
    int c = strcmp(a->kind, b->kind);

    if (c == 0) {
        c = (a->name == NULL) - (b->name == NULL);
    }
    if (c == 0) {
        c = a->name ? strcmp(a->name, b->name) : kn_diff_cmp_size(a->index, b->index);
    }
    return c;
}

/* For sorting one set: the key, then position, which makes the sort stable. */
static int kn_diff_cmp_sort(const void *pa, const void *pb)
{
    const struct kn_diff_entry *a = pa;
    const struct kn_diff_entry *b = pb;
    int c = kn_diff_cmp_key(a, b);

    return c ? c : kn_diff_cmp_size(a->index, b->index);
}

static int kn_diff_cmp_full(const struct kn_diff_entry *a, const struct kn_diff_entry *b)
{
    int c = kn_diff_cmp_key(a, b);

    return c ? c : kn_diff_cmp_size(a->occurrence, b->occurrence);
}

/* The entries of a set (NULL: none), sorted by key; caller frees. */
static struct kn_diff_entry *kn_diff_entries(const json_t *set, size_t *count)
{
    size_t n = set ? json_array_size(set) : 0;
    struct kn_diff_entry *e = kn_calloc(n ? n : 1, sizeof(*e));

    for (size_t i = 0; i < n; i++) {
        const json_t *doc = json_array_get(set, i);
        const char *kind = json_string_value(json_object_get(doc, "kind"));
        const char *name =
            json_string_value(json_object_get(json_object_get(doc, "metadata"), "name"));

        e[i].kind = kind ? kind : "";
        e[i].name = kind ? name : NULL;
        e[i].index = i;
        e[i].doc = doc;
    }
    qsort(e, n, sizeof(*e), kn_diff_cmp_sort);
    for (size_t i = 1; i < n; i++) {
        if (kn_diff_cmp_key(&e[i - 1], &e[i]) == 0) {
            e[i].occurrence = e[i - 1].occurrence + 1;
        }
    }
    *count = n;
    return e;
}

/* ---- the structural walk ------------------------------------------------------------------- */

/* Field changes of one manifest, growing. */
struct kn_diff_fields {
    struct kn_field_change *items;
    size_t count;
    size_t cap;
};

/* The path being walked: a NUL-terminated string cut back after each step down. */
struct kn_diff_path {
    char *data;
    size_t len;
    size_t cap;
};

static void kn_diff_path_add(struct kn_diff_path *p, const char *s, size_t n)
{
    if (p->len + n + 1 > p->cap) {
        p->cap = p->len + n + 1 > 2 * p->cap ? p->len + n + 1 : 2 * p->cap;
        p->data = kn_realloc(p->data, p->cap);
    }
    memcpy(p->data + p->len, s, n);
    p->len += n;
    p->data[p->len] = '\0';
}

static void kn_diff_path_cut(struct kn_diff_path *p, size_t len)
{
    p->len = len;
    if (p->data) {
        p->data[len] = '\0';
    }
}

static int kn_diff_is_ident(const char *k, size_t len)
{
    int ok = len > 0;

    for (size_t i = 0; ok && i < len; i++) {
        char c = k[i];
        ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
             (i > 0 && ((c >= '0' && c <= '9') || c == '-'));
    }
    return ok;
}

/* `.key`, or `["key"]` (JSON string syntax, ASCII) when the key is not an identifier. */
static void kn_diff_path_key(struct kn_diff_path *p, const char *key, size_t len)
{
    json_t *s = NULL;
    char *quoted = NULL;

    if (kn_diff_is_ident(key, len)) {
        if (p->len > 0) {
            kn_diff_path_add(p, ".", 1);
        }
        kn_diff_path_add(p, key, len);
    } else {
        s = kn_diff_must(json_stringn(key, len));
        quoted = kn_json_canonical(s);
        kn_diff_path_add(p, "[", 1);
        kn_diff_path_add(p, quoted, strlen(quoted));
        kn_diff_path_add(p, "]", 1);
    }
    free(quoted);
    json_decref(s);
}

static void kn_diff_path_index(struct kn_diff_path *p, size_t i)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "[%zu]", i);

    kn_diff_path_add(p, buf, (size_t)n);
}

static void kn_diff_record(struct kn_diff_fields *f, const struct kn_diff_path *p, const json_t *a,
                           const json_t *b)
{
    struct kn_field_change *c = NULL;

    if (f->count == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 4;
        f->items = kn_reallocarray(f->items, f->cap, sizeof(*f->items));
    }
    c = &f->items[f->count++];
    /* the root itself changed (a manifest that is not an object): "." as in jq */
    c->path = kn_strdup(p->len ? p->data : ".");
    c->old_value = kn_json_canonical(a);
    c->new_value = kn_json_canonical(b);
}

struct kn_diff_key {
    const char *key;
    size_t len;
};

static int kn_diff_cmp_keys(const void *pa, const void *pb)
{
    const struct kn_diff_key *a = pa;
    const struct kn_diff_key *b = pb;
    int c = memcmp(a->key, b->key, a->len < b->len ? a->len : b->len);

    return c ? c : kn_diff_cmp_size(a->len, b->len);
}

/* The keys of obj sorted in byte order; caller frees. */
static struct kn_diff_key *kn_diff_sorted_keys(const json_t *obj, size_t *count)
{
    size_t n = json_object_size(obj);
    struct kn_diff_key *keys = kn_calloc(n ? n : 1, sizeof(*keys));
    /* jansson's iterators take a non-const object but do not change it */
    json_t *o = (json_t *)(uintptr_t)obj;
    size_t i = 0;

    for (void *it = json_object_iter(o); it && i < n; it = json_object_iter_next(o, it)) {
        keys[i].key = json_object_iter_key(it);
        keys[i].len = json_object_iter_key_len(it);
        i++;
    }
    qsort(keys, n, sizeof(*keys), kn_diff_cmp_keys);
    *count = n;
    return keys;
}

static void kn_diff_walk(struct kn_diff_fields *f, struct kn_diff_path *p, const json_t *a,
                         const json_t *b);

static void kn_diff_walk_objects(struct kn_diff_fields *f, struct kn_diff_path *p, const json_t *a,
                                 const json_t *b)
{
    size_t na = 0;
    size_t nb = 0;
    struct kn_diff_key *ka = kn_diff_sorted_keys(a, &na);
    struct kn_diff_key *kb = kn_diff_sorted_keys(b, &nb);
    size_t mark = p->len;
    size_t i = 0;
    size_t j = 0;

    while (i < na || j < nb) {
        int c = i == na ? 1 : j == nb ? -1 : kn_diff_cmp_keys(&ka[i], &kb[j]);
        const struct kn_diff_key *k = c <= 0 ? &ka[i] : &kb[j];
        const json_t *va = c <= 0 ? json_object_getn(a, k->key, k->len) : NULL;
        const json_t *vb = c >= 0 ? json_object_getn(b, k->key, k->len) : NULL;

        kn_diff_path_key(p, k->key, k->len);
        kn_diff_walk(f, p, va, vb);
        kn_diff_path_cut(p, mark);
        i += c <= 0;
        j += c >= 0;
    }
    free(ka);
    free(kb);
}

static void kn_diff_walk_arrays(struct kn_diff_fields *f, struct kn_diff_path *p, const json_t *a,
                                const json_t *b)
{
    size_t na = json_array_size(a);
    size_t nb = json_array_size(b);
    size_t mark = p->len;

    for (size_t i = 0; i < na || i < nb; i++) {
        kn_diff_path_index(p, i);
        kn_diff_walk(f, p, json_array_get(a, i), json_array_get(b, i));
        kn_diff_path_cut(p, mark);
    }
}

/* Record every difference under p between a and b (either NULL: absent on that side). Equal
 * subtrees are skipped whole; a value that appears, disappears or changes type is one change. */
static void kn_diff_walk(struct kn_diff_fields *f, struct kn_diff_path *p, const json_t *a,
                         const json_t *b)
{
    if ((!a && !b) || (a && b && json_equal(a, b))) {
        /* nothing to record */
    } else if (json_is_object(a) && json_is_object(b)) {
        kn_diff_walk_objects(f, p, a, b);
    } else if (json_is_array(a) && json_is_array(b)) {
        kn_diff_walk_arrays(f, p, a, b);
    } else {
        kn_diff_record(f, p, a, b);
    }
}

/* ---- the diff ------------------------------------------------------------------------------ */

static struct kn_manifest_change *kn_diff_push(struct kn_diff *d, size_t *cap, enum kn_change_op op,
                                               const struct kn_diff_entry *e)
{
    struct kn_manifest_change *c = NULL;

    if (d->count == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        d->items = kn_reallocarray(d->items, *cap, sizeof(*d->items));
    }
    c = &d->items[d->count++];
    memset(c, 0, sizeof(*c));
    c->op = op;
    c->kind = kn_strdup(e->kind);
    c->name = e->name ? kn_strdup(e->name) : kn_asprintf("#%zu", e->index);
    return c;
}

/*
 * A manifest keyed by position (no kind, or no metadata.name) is named "#<index>", its 0-based
 * position in its own set, and keeps its kind (or "") when it has one. Positional entries never
 * match named ones, even one literally called "#0".
 */
int kn_diff_manifests(struct kn_diff *out, const json_t *old_set, const json_t *new_set)
{
    int rc = 0;
    struct kn_diff_entry *ea = NULL;
    struct kn_diff_entry *eb = NULL;
    size_t na = 0;
    size_t nb = 0;
    size_t cap = 0;
    size_t i = 0;
    size_t j = 0;
    struct kn_diff_path path = {0};

    out->items = NULL;
    out->count = 0;
    if ((old_set && !json_is_array(old_set)) || (new_set && !json_is_array(new_set))) {
        rc = KN_EINVAL;
        goto out;
    }
    ea = kn_diff_entries(old_set, &na);
    eb = kn_diff_entries(new_set, &nb);
    while (i < na || j < nb) {
        int c = i == na ? 1 : j == nb ? -1 : kn_diff_cmp_full(&ea[i], &eb[j]);

        if (c < 0) {
            kn_diff_push(out, &cap, KN_CHANGE_REMOVED, &ea[i]);
        } else if (c > 0) {
            kn_diff_push(out, &cap, KN_CHANGE_ADDED, &eb[j]);
        } else {
            struct kn_diff_fields f = {0};

            kn_diff_path_cut(&path, 0);
            kn_diff_walk(&f, &path, ea[i].doc, eb[j].doc);
            if (f.count > 0) {
                struct kn_manifest_change *m = kn_diff_push(out, &cap, KN_CHANGE_CHANGED, &eb[j]);
                m->fields = f.items;
                m->nfields = f.count;
            }
        }
        i += c <= 0;
        j += c >= 0;
    }
out:
    free(path.data);
    free(ea);
    free(eb);
    return rc;
}

void kn_diff_release(struct kn_diff *d)
{
    for (size_t i = 0; d && i < d->count; i++) {
        struct kn_manifest_change *c = &d->items[i];
        for (size_t k = 0; k < c->nfields; k++) {
            free(c->fields[k].path);
            free(c->fields[k].old_value);
            free(c->fields[k].new_value);
        }
        free(c->fields);
        free(c->kind);
        free(c->name);
    }
    if (d) {
        free(d->items);
        d->items = NULL;
        d->count = 0;
    }
}

/* ---- output -------------------------------------------------------------------------------- */

static const char *kn_diff_op_name(enum kn_change_op op)
{
    const char *s = "unknown";

    switch (op) {
    case KN_CHANGE_ADDED:
        s = "added";
        break;
    case KN_CHANGE_REMOVED:
        s = "removed";
        break;
    case KN_CHANGE_CHANGED:
        s = "changed";
        break;
    }
    return s;
}

static char kn_diff_op_mark(enum kn_change_op op)
{
    char c = '?';

    switch (op) {
    case KN_CHANGE_ADDED:
        c = '+';
        break;
    case KN_CHANGE_REMOVED:
        c = '-';
        break;
    case KN_CHANGE_CHANGED:
        c = '~';
        break;
    }
    return c;
}

/* Kinds and names come from the repository: one that is not plain printable ASCII is shown as a
 * JSON string, so that the text stays one line per change and carries nothing a terminal would
 * act on. */
static void kn_diff_add_name(struct kn_buf *b, const char *s)
{
    int plain = 1;
    json_t *j = NULL;
    char *quoted = NULL;

    for (const unsigned char *p = (const unsigned char *)s; plain && *p; p++) {
        plain = *p >= 0x20 && *p < 0x7f;
    }
    if (plain) {
        kn_buf_adds(b, s);
    } else {
        j = json_string(s);
        quoted = j ? kn_json_canonical(j) : kn_strdup("\"?\"");
        kn_buf_adds(b, quoted);
    }
    free(quoted);
    json_decref(j);
}

char *kn_diff_format(const struct kn_diff *d)
{
    struct kn_buf b;
    size_t len = 0;

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    for (size_t i = 0; d && i < d->count; i++) {
        const struct kn_manifest_change *c = &d->items[i];

        kn_buf_addch(&b, kn_diff_op_mark(c->op));
        kn_buf_addch(&b, ' ');
        if (c->kind && c->kind[0]) {
            kn_diff_add_name(&b, c->kind);
            kn_buf_addch(&b, '/');
        }
        kn_diff_add_name(&b, c->name ? c->name : "");
        kn_buf_addch(&b, '\n');
        for (size_t k = 0; k < c->nfields; k++) {
            const struct kn_field_change *f = &c->fields[k];
            kn_buf_addf(&b, "    %s: %s -> %s\n", f->path, f->old_value ? f->old_value : "(absent)",
                        f->new_value ? f->new_value : "(absent)");
        }
    }
    return kn_buf_detach(&b, &len);
}

/* A value's compact text back to JSON; text that does not parse (a hand-made diff) stays a
 * string rather than being lost. */
static json_t *kn_diff_value(const char *text)
{
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);

    return j ? j : kn_diff_must(json_string(text));
}

/* Added and removed entries have no "fields" member. */
json_t *kn_diff_to_json(const struct kn_diff *d)
{
    json_t *arr = kn_diff_must(json_array());

    for (size_t i = 0; d && i < d->count; i++) {
        const struct kn_manifest_change *c = &d->items[i];
        json_t *o = kn_diff_must(json_object());

        kn_diff_set(o, "op", json_string(kn_diff_op_name(c->op)));
        kn_diff_set(o, "kind", json_string(c->kind ? c->kind : ""));
        kn_diff_set(o, "name", json_string(c->name ? c->name : ""));
        if (c->op == KN_CHANGE_CHANGED) {
            json_t *fields = kn_diff_must(json_array());
            for (size_t k = 0; k < c->nfields; k++) {
                const struct kn_field_change *fc = &c->fields[k];
                json_t *f = kn_diff_must(json_object());
                kn_diff_set(f, "path", json_string(fc->path));
                if (fc->old_value) {
                    kn_diff_set(f, "old", kn_diff_value(fc->old_value));
                }
                if (fc->new_value) {
                    kn_diff_set(f, "new", kn_diff_value(fc->new_value));
                }
                if (json_array_append_new(fields, f) < 0) {
                    kn_diff_die("out of memory building JSON");
                }
            }
            kn_diff_set(o, "fields", fields);
        }
        if (json_array_append_new(arr, o) < 0) {
            kn_diff_die("out of memory building JSON");
        }
    }
    return arr;
}
