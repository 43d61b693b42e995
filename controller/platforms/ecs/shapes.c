/*
 * An ECS app's files against the ECS API's input shapes (shapes.h).
 */
#include "platforms/ecs/shapes.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"

#define KN_ECS_PATH_MAX 512 /* a longer member path is cut (messages only) */

/* Where the walk is: the member path of the node being checked. */
struct walk {
    struct kn_schema_ctx *ctx;
    char path[KN_ECS_PATH_MAX];
    size_t len;
};

static void walk_error(struct walk *w, const struct kn_node *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void walk_error(struct walk *w, const struct kn_node *node, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = kn_vasprintf(fmt, ap);
    va_end(ap);
    if (w->len) {
        kn_schema_error(w->ctx, node, "%s: %s", w->path, msg);
    } else {
        kn_schema_error(w->ctx, node, "%s", msg);
    }
    free(msg);
}

/* Append to the path; returns the length to restore. */
static size_t push(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static size_t push(struct walk *w, const char *fmt, ...)
{
    size_t saved = w->len;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(w->path + w->len, sizeof(w->path) - w->len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        w->len += (size_t)n;
        if (w->len >= sizeof(w->path)) {
            w->len = sizeof(w->path) - 1;
        }
    }
    return saved;
}

static void pop(struct walk *w, size_t len)
{
    w->len = len;
    w->path[len] = '\0';
}

/* A member path segment: `.name`, or `["a.b"]` for a map key that is not a plain word. */
static size_t push_key(struct walk *w, const char *key)
{
    size_t plain = strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");

    if (key[0] && !key[plain]) {
        return push(w, "%s%s", w->len ? "." : "", key);
    }
    return push(w, "[\"%s\"]", key);
}

/* "RegisterTaskDefinitionRequest" reads "RegisterTaskDefinition input" in messages. */
static void shape_title(const struct kn_ecs_shape *s, char *buf, size_t size)
{
    size_t n = strlen(s->name);
    const char *suffix = "Request";

    if (n > strlen(suffix) && strcmp(s->name + n - strlen(suffix), suffix) == 0) {
        snprintf(buf, size, "%.*s input", (int)(n - strlen(suffix)), s->name);
    } else {
        snprintf(buf, size, "%s", s->name);
    }
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t prev[64], cur[64];

    if (lb >= 64 || la >= 64) {
        return SIZE_MAX;
    }
    for (size_t j = 0; j <= lb; j++) {
        prev[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            size_t best = prev[j - 1] + cost;
            best = prev[j] + 1 < best ? prev[j] + 1 : best;
            best = cur[j - 1] + 1 < best ? cur[j - 1] + 1 : best;
            cur[j] = best;
        }
        memcpy(prev, cur, sizeof(size_t) * (lb + 1));
    }
    return prev[lb];
}

const struct kn_ecs_member *kn_ecs_shape_member(const struct kn_ecs_shape *shape,
                                               const char *name)
{
    if (!shape || shape->type != KN_ECS_STRUCT) {
        return NULL;
    }
    for (unsigned i = 0; i < shape->count; i++) {
        if (strcmp(kn_ecs_members[shape->first + i].name, name) == 0) {
            return &kn_ecs_members[shape->first + i];
        }
    }
    return NULL;
}

static void check_node(struct walk *w, const struct kn_ecs_shape *s, const struct kn_node *n);

static int is_null(const struct kn_node *n)
{
    return n->type == KN_NODE_SCALAR && kn_node_scalar_kind(n) == KN_SCALAR_NULL;
}

static void unknown_member(struct walk *w, const struct kn_ecs_shape *s, const struct kn_pair *p)
{
    const char *suggest = NULL;
    size_t best = 3; /* a closer member than this is a likely typo */
    char title[96];
    struct kn_buf names;
    size_t saved;

    shape_title(s, title, sizeof(title));
    kn_buf_init(&names, KN_BUF_UNBOUNDED);
    for (unsigned i = 0; i < s->count; i++) {
        const char *m = kn_ecs_members[s->first + i].name;
        size_t d = edit_distance(p->key->scalar, m);
        if (d < best) {
            best = d;
            suggest = m;
        }
        kn_buf_addf(&names, "%s%s", names.len ? ", " : "", m);
    }
    saved = push_key(w, p->key->scalar);
    if (suggest) {
        walk_error(w, p->key, "unknown member of %s (did you mean '%s'?)", title, suggest);
    } else {
        walk_error(w, p->key, "unknown member of %s (its members: %s)", title,
                   names.len ? names.data : "none");
    }
    pop(w, saved);
    kn_buf_release(&names);
}

static void check_struct(struct walk *w, const struct kn_ecs_shape *s, const struct kn_node *n)
{
    char title[96];

    for (size_t i = 0; i < n->len; i++) {
        const struct kn_pair *p = &n->pairs[i];
        const struct kn_ecs_member *m = kn_ecs_shape_member(s, p->key->scalar);
        size_t saved;

        if (!m) {
            unknown_member(w, s, p);
            continue;
        }
        if (is_null(p->value)) {
            continue; /* an absent member */
        }
        saved = push_key(w, m->name);
        check_node(w, &kn_ecs_shapes[m->shape], p->value);
        pop(w, saved);
    }
    for (unsigned i = 0; i < s->count; i++) {
        const struct kn_ecs_member *m = &kn_ecs_members[s->first + i];
        const struct kn_node *v = kn_node_get(n, m->name);
        if (m->required && (!v || is_null(v))) {
            shape_title(s, title, sizeof(title));
            walk_error(w, v ? v : n, "a%s %s needs '%s'", strchr("AEIOU", title[0]) ? "n" : "",
                       title, m->name);
        }
    }
}

/* Characters of UTF-8 text, as AWS counts a string's length. */
static size_t utf8_length(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        n += ((unsigned char)*s & 0xC0) != 0x80;
    }
    return n;
}

static void check_string(struct walk *w, const struct kn_ecs_shape *s, const struct kn_node *n)
{
    size_t len;

    if (n->type != KN_NODE_SCALAR) {
        walk_error(w, n, "must be a string, got %s", kn_node_describe(n));
        return;
    }
    if (s->count > 0) {
        struct kn_buf allowed;
        if (n->scalar[0] == '\0') {
            return; /* "" for an enum is an absent member (shapes.h) */
        }
        for (unsigned i = 0; i < s->count; i++) {
            if (strcmp(kn_ecs_enums[s->first + i], n->scalar) == 0) {
                return;
            }
        }
        kn_buf_init(&allowed, KN_BUF_UNBOUNDED);
        for (unsigned i = 0; i < s->count; i++) {
            kn_buf_addf(&allowed, "%s%s", i ? ", " : "", kn_ecs_enums[s->first + i]);
        }
        walk_error(w, n, "must be one of %s, got '%s'", allowed.data, n->scalar);
        kn_buf_release(&allowed);
        return;
    }
    len = utf8_length(n->scalar);
    if ((s->flags & KN_ECS_MIN) && len < (size_t)s->min) {
        walk_error(w, n, "must be at least %lld character%s long, got %zu", s->min,
                   s->min == 1 ? "" : "s", len);
    } else if ((s->flags & KN_ECS_MAX) && len > (size_t)s->max) {
        walk_error(w, n, "must be at most %lld characters long, got %zu", s->max, len);
    }
}

static void check_integer(struct walk *w, const struct kn_ecs_shape *s, const struct kn_node *n)
{
    long long lo = s->type == KN_ECS_LONG ? INT64_MIN : INT32_MIN;
    long long hi = s->type == KN_ECS_LONG ? INT64_MAX : INT32_MAX;
    json_t *j;

    if (n->type != KN_NODE_SCALAR || kn_node_scalar_kind(n) != KN_SCALAR_INT) {
        walk_error(w, n, "must be an integer, got %s", kn_node_describe(n));
        return;
    }
    lo = (s->flags & KN_ECS_MIN) ? s->min : lo;
    hi = (s->flags & KN_ECS_MAX) ? s->max : hi;
    j = kn_node_to_json(n); /* a real when it does not fit in 64 bits */
    if (!json_is_integer(j) || json_integer_value(j) < lo || json_integer_value(j) > hi) {
        walk_error(w, n, "must be between %lld and %lld, got %s", lo, hi, n->scalar);
    }
    json_decref(j);
}

static void check_node(struct walk *w, const struct kn_ecs_shape *s, const struct kn_node *n)
{
    enum kn_scalar_kind kind = n->type == KN_NODE_SCALAR ? kn_node_scalar_kind(n) : 0;

    switch ((enum kn_ecs_shape_type)s->type) {
    case KN_ECS_STRUCT:
        if (n->type != KN_NODE_MAP) {
            walk_error(w, n, "must be a map, got %s", kn_node_describe(n));
        } else {
            check_struct(w, s, n);
        }
        break;
    case KN_ECS_LIST:
        if (n->type != KN_NODE_SEQ) {
            walk_error(w, n, "must be a list, got %s", kn_node_describe(n));
            break;
        }
        if ((s->flags & KN_ECS_MIN) && n->len < (size_t)s->min) {
            walk_error(w, n, "must have at least %lld item%s, got %zu", s->min,
                       s->min == 1 ? "" : "s", n->len);
        } else if ((s->flags & KN_ECS_MAX) && n->len > (size_t)s->max) {
            walk_error(w, n, "must have at most %lld items, got %zu", s->max, n->len);
        }
        for (size_t i = 0; i < n->len; i++) {
            size_t saved = push(w, "[%zu]", i);
            check_node(w, &kn_ecs_shapes[s->first], n->items[i]);
            pop(w, saved);
        }
        break;
    case KN_ECS_MAP:
        if (n->type != KN_NODE_MAP) {
            walk_error(w, n, "must be a map, got %s", kn_node_describe(n));
            break;
        }
        for (size_t i = 0; i < n->len; i++) {
            const struct kn_pair *p = &n->pairs[i];
            size_t saved = push_key(w, p->key->scalar);
            check_node(w, &kn_ecs_shapes[s->first], p->key);
            if (!is_null(p->value)) {
                check_node(w, &kn_ecs_shapes[s->count], p->value);
            }
            pop(w, saved);
        }
        break;
    case KN_ECS_STRING:
        check_string(w, s, n);
        break;
    case KN_ECS_INTEGER:
    case KN_ECS_LONG:
        check_integer(w, s, n);
        break;
    case KN_ECS_BOOLEAN:
        if (kind != KN_SCALAR_BOOL) {
            walk_error(w, n, "must be true or false, got %s", kn_node_describe(n));
        }
        break;
    case KN_ECS_DOUBLE:
        if (kind != KN_SCALAR_INT && kind != KN_SCALAR_FLOAT) {
            walk_error(w, n, "must be a number, got %s", kn_node_describe(n));
        }
        break;
    case KN_ECS_TIMESTAMP:
        if (kind != KN_SCALAR_INT && kind != KN_SCALAR_FLOAT && kind != KN_SCALAR_STR) {
            walk_error(w, n, "must be a time (epoch seconds or ISO 8601), got %s",
                       kn_node_describe(n));
        }
        break;
    case KN_ECS_BLOB:
        if (kind != KN_SCALAR_STR) {
            walk_error(w, n, "must be base64 text, got %s", kn_node_describe(n));
        }
        break;
    case KN_ECS_DOCUMENT:
        break;
    }
}

void kn_ecs_shape_check(const struct kn_ecs_shape *shape, const struct kn_node *node,
                        struct kn_schema_ctx *ctx)
{
    struct walk w;

    if (!shape || !node || !ctx) {
        return;
    }
    memset(&w, 0, sizeof(w));
    w.ctx = ctx;
    check_node(&w, shape, node);
}

/* ---- the wire ------------------------------------------------------------------------------ */

/* The shortest text that reads back as v, as a person writes it: 0.5, not 0.50000000000000000;
 * 1000 for 1e3. */
static json_t *real_string(double v)
{
    char buf[40];

    if (v > -1e15 && v < 1e15 && v == (double)(long long)v) {
        snprintf(buf, sizeof(buf), "%lld", (long long)v); /* 1e3 -> "1000" */
        return json_string(buf);
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, v);
        if (strtod(buf, NULL) == v) {
            break;
        }
    }
    return json_string(buf);
}

json_t *kn_ecs_shape_to_wire(const json_t *spec, const struct kn_ecs_shape *shape)
{
    json_t *in = (json_t *)(uintptr_t)spec; /* jansson's iterators take no const */
    json_t *out = NULL;
    const char *key;
    json_t *value;
    size_t i;

    if (!spec || json_is_null(spec)) {
        return NULL;
    }
    if (!shape) {
        return json_deep_copy(spec);
    }
    switch ((enum kn_ecs_shape_type)shape->type) {
    case KN_ECS_STRUCT:
        if (!json_is_object(spec)) {
            break;
        }
        out = json_object();
        json_object_foreach(in, key, value)
        {
            const struct kn_ecs_member *m = kn_ecs_shape_member(shape, key);
            json_t *v = kn_ecs_shape_to_wire(value, m ? &kn_ecs_shapes[m->shape] : NULL);
            if (v) {
                json_object_set_new(out, key, v);
            }
        }
        return out;
    case KN_ECS_LIST:
        if (!json_is_array(spec)) {
            break;
        }
        out = json_array();
        json_array_foreach(in, i, value)
        {
            json_t *v = kn_ecs_shape_to_wire(value, &kn_ecs_shapes[shape->first]);
            json_array_append_new(out, v ? v : json_null());
        }
        return out;
    case KN_ECS_MAP:
        if (!json_is_object(spec)) {
            break;
        }
        out = json_object();
        json_object_foreach(in, key, value)
        {
            json_t *v = kn_ecs_shape_to_wire(value, &kn_ecs_shapes[shape->count]);
            if (v) {
                json_object_set_new(out, key, v);
            }
        }
        return out;
    case KN_ECS_STRING:
        if (json_is_integer(spec)) {
            return json_sprintf("%" JSON_INTEGER_FORMAT, json_integer_value(spec));
        }
        if (json_is_real(spec)) {
            return real_string(json_real_value(spec));
        }
        if (json_is_boolean(spec)) {
            return json_string(json_is_true(spec) ? "true" : "false");
        }
        if (shape->count > 0 && json_is_string(spec) && json_string_length(spec) == 0) {
            return NULL; /* "" for an enum: absent */
        }
        break;
    default:
        break;
    }
    return json_deep_copy(spec);
}
