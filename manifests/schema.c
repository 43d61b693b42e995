/*
 * Schema-driven parsing: one table per section fills a C struct and reports every problem with
 * its location. See include/kanaria/schema.h for the contract.
 */
#include "kanaria/schema.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"

#define KN_SCHEMA_MAX_FIELDS 64

static void parse_struct(const struct kn_schema *schema, const struct kn_node *node,
                         const struct kn_loc *where, void *obj, struct kn_schema_ctx *ctx);
static void parse_fields(const struct kn_schema *schema, const struct kn_schema *outer,
                         const struct kn_node *node, const struct kn_loc *where, void *obj,
                         struct kn_schema_ctx *ctx);

static void add_diag(struct kn_schema_ctx *ctx, const struct kn_loc *loc, const char *fmt,
                     va_list ap) __attribute__((format(printf, 3, 0)));

static void add_diag(struct kn_schema_ctx *ctx, const struct kn_loc *loc, const char *fmt,
                     va_list ap)
{
    char *msg = kn_vasprintf(fmt, ap);
    if (ctx->prefix && ctx->prefix[0]) {
        kn_diags_add(ctx->diags, loc, "%s: %s", ctx->prefix, msg);
    } else {
        kn_diags_add(ctx->diags, loc, "%s", msg);
    }
    free(msg);
}

void kn_schema_error(struct kn_schema_ctx *ctx, const struct kn_node *node, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_diag(ctx, node ? &node->loc : ctx->where, fmt, ap);
    va_end(ap);
}

void kn_schema_error_in(struct kn_schema_ctx *ctx, const char *subject,
                        const struct kn_node *node, const char *fmt, ...)
{
    const char *saved = ctx->prefix;
    char *prefix = NULL;
    char *msg;
    va_list ap;

    va_start(ap, fmt);
    msg = kn_vasprintf(fmt, ap);
    va_end(ap);
    if (subject && subject[0]) {
        prefix = saved && saved[0] ? kn_asprintf("%s: %s", saved, subject) : kn_strdup(subject);
        ctx->prefix = prefix;
    }
    kn_schema_error(ctx, node, "%s", msg);
    ctx->prefix = saved;
    free(prefix);
    free(msg);
}

void kn_schema_error_at(struct kn_schema_ctx *ctx, const struct kn_loc *loc, const char *fmt,
                        ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_diag(ctx, loc, fmt, ap);
    va_end(ap);
}

/* ---- value parsers -------------------------------------------------------------------------- */

int kn_duration_parse(const char *s, long long *ms)
{
    static const struct {
        const char *unit;
        long long ms;
    } units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000}, {"d", 24 * 3600 * 1000},
    };
    long long total = 0;
    const char *p = s;

    if (!s || !*s) {
        return KN_EINVAL;
    }
    if (strspn(s, "0123456789") == strlen(s)) {
        if (strlen(s) > 9) {
            return KN_EINVAL;
        }
        *ms = strtoll(s, NULL, 10) * 1000;
        return 0;
    }
    while (*p) {
        char *end;
        double v;
        size_t i;

        size_t digits = strspn(p, "0123456789");
        size_t frac = p[digits] == '.' ? strspn(p + digits + 1, "0123456789") : 0;

        /* digits with an optional .digits: no sign, exponent or hex that strtod would take */
        if (digits == 0 || (p[digits] == '.' && frac == 0)) {
            return KN_EINVAL;
        }
        errno = 0;
        v = strtod(p, &end);
        if (errno || end != p + digits + (frac ? frac + 1 : 0)) {
            return KN_EINVAL;
        }
        p = end;
        for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t n = strlen(units[i].unit);
            /* "m" must not match the start of "ms" */
            if (strncmp(p, units[i].unit, n) == 0 && !isalpha((unsigned char)p[n])) {
                break;
            }
        }
        if (i == sizeof(units) / sizeof(units[0])) {
            return KN_EINVAL;
        }
        if (v * (double)units[i].ms > 1e15) {
            return KN_EINVAL;
        }
        total += llround(v * (double)units[i].ms);
        p += strlen(units[i].unit);
    }
    *ms = total;
    return 0;
}

const char *kn_duration_format(long long ms, char *buf, size_t size)
{
    static const struct {
        const char *unit;
        long long ms;
    } units[] = {
        {"d", 24LL * 3600 * 1000}, {"h", 3600 * 1000}, {"m", 60 * 1000}, {"s", 1000}, {"ms", 1},
    };
    size_t off = 0;

    if (size == 0) {
        return buf;
    }
    buf[0] = '\0';
    if (ms <= 0) {
        snprintf(buf, size, "0s");
        return buf;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && off < size; i++) {
        long long n = ms / units[i].ms;
        if (n > 0) {
            int w = snprintf(buf + off, size - off, "%lld%s", n, units[i].unit);
            if (w < 0) {
                break;
            }
            off += (size_t)w;
            ms -= n * units[i].ms;
        }
    }
    return buf;
}

int kn_percent_parse(const char *s, double *out)
{
    char *end;
    double v;

    if (!s || !*s || isspace((unsigned char)*s)) {
        return KN_EINVAL;
    }
    errno = 0;
    v = strtod(s, &end);
    if (end == s || errno || !isfinite(v)) {
        return KN_EINVAL;
    }
    if (*end == '%') {
        end++;
    }
    if (*end) {
        return KN_EINVAL;
    }
    *out = v;
    return 0;
}

int kn_hostport_parse(const char *s, char *host, size_t host_size, int *port)
{
    const char *colon;
    const char *h = s;
    size_t hlen;
    char *end;
    long p;

    if (!s || !*s) {
        return KN_EINVAL;
    }
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            return KN_EINVAL;
        }
        h = s + 1;
        hlen = (size_t)(close - h);
        if (hlen == 0) {
            return KN_EINVAL;
        }
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s))) {
            return KN_EINVAL;
        }
        hlen = (size_t)(colon - s);
    }
    for (size_t i = 0; i < hlen; i++) {
        if (isspace((unsigned char)h[i]) || h[i] == '/') {
            return KN_EINVAL;
        }
    }
    if (colon[1] == '\0' || strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
        return KN_EINVAL;
    }
    errno = 0;
    p = strtol(colon + 1, &end, 10);
    if (*end || errno || p < 1 || p > 65535 || hlen >= host_size) {
        return KN_EINVAL;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return 0;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static void *at(void *obj, size_t offset)
{
    return (char *)obj + offset;
}

static int is_null(const struct kn_node *n)
{
    return !n || (n->type == KN_NODE_SCALAR && kn_node_scalar_kind(n) == KN_SCALAR_NULL);
}

/* Writes "path.key" (or "key") into buf. */
static const char *join_path(char *buf, size_t size, const char *path, const char *key)
{
    int n = path && path[0] ? snprintf(buf, size, "%s.%s", path, key)
                            : snprintf(buf, size, "%s", key);

    /* names only appear in messages: a cut one still reads */
    if (n < 0 || (size_t)n >= size) {
        buf[size - 1] = '\0';
    }
    return buf;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t prev[64], cur[64];

    if (la >= 63 || lb >= 63) {
        return 99;
    }
    for (size_t j = 0; j <= lb; j++) {
        prev[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1])
                              ? 0
                              : 1;
            size_t best = prev[j - 1] + cost;
            if (prev[j] + 1 < best) {
                best = prev[j] + 1;
            }
            if (cur[j - 1] + 1 < best) {
                best = cur[j - 1] + 1;
            }
            cur[j] = best;
        }
        memcpy(prev, cur, sizeof(size_t) * (lb + 1));
    }
    return prev[lb];
}

static const struct kn_field *find_field(const struct kn_schema *schema, const char *key,
                                         size_t *index)
{
    for (size_t i = 0; i < schema->nfields; i++) {
        if (strcmp(schema->fields[i].key, key) == 0) {
            *index = i;
            return &schema->fields[i];
        }
    }
    return NULL;
}

/* `outer`: the schema whose variant `schema` is (its fixed keys are allowed too), or NULL. */
static void unknown_key(const struct kn_schema *schema, const struct kn_schema *outer,
                        const struct kn_node *key, struct kn_schema_ctx *ctx)
{
    const struct kn_schema *both[2] = {outer, schema};
    struct kn_buf allowed;
    const char *suggest = NULL;
    size_t best = 3;

    kn_buf_init(&allowed, KN_BUF_UNBOUNDED);
    for (size_t s = 0; s < 2; s++) {
        for (size_t i = 0; both[s] && i < both[s]->nfields; i++) {
            size_t d = edit_distance(key->scalar, both[s]->fields[i].key);
            if (d < best) {
                best = d;
                suggest = both[s]->fields[i].key;
            }
            kn_buf_addf(&allowed, "%s%s", allowed.len ? ", " : "", both[s]->fields[i].key);
        }
    }
    if (allowed.len == 0) {
        kn_buf_adds(&allowed, "none");
    }
    if (suggest) {
        kn_schema_error(ctx, key, "unknown key '%s'%s%s%s, did you mean '%s'? (allowed: %s)",
                        key->scalar, ctx->path[0] ? " in '" : "", ctx->path,
                        ctx->path[0] ? "'" : "", suggest, allowed.data);
    } else {
        kn_schema_error(ctx, key, "unknown key '%s'%s%s%s (allowed: %s)", key->scalar,
                        ctx->path[0] ? " in '" : "", ctx->path, ctx->path[0] ? "'" : "",
                        allowed.data);
    }
    kn_buf_release(&allowed);
}

static void out_of_bounds(const struct kn_field *f, const struct kn_node *n, const char *name,
                          double v, const char *shown, struct kn_schema_ctx *ctx)
{
    int lo = (f->flags & KN_FIELD_MIN) && v < f->min;
    int hi = (f->flags & KN_FIELD_MAX) && v > f->max;
    char a[32], b[32];

    if (!lo && !hi) {
        return;
    }
    if (f->type == KN_TYPE_DURATION) {
        kn_duration_format((long long)f->min, a, sizeof(a));
        kn_duration_format((long long)f->max, b, sizeof(b));
    } else {
        snprintf(a, sizeof(a), "%g", f->min);
        snprintf(b, sizeof(b), "%g", f->max);
    }
    if ((f->flags & KN_FIELD_MIN) && (f->flags & KN_FIELD_MAX)) {
        kn_schema_error(ctx, n, "'%s' must be between %s and %s, got %s", name, a, b, shown);
    } else if (lo) {
        kn_schema_error(ctx, n, "'%s' must be at least %s, got %s", name, a, shown);
    } else {
        kn_schema_error(ctx, n, "'%s' must be at most %s, got %s", name, b, shown);
    }
}

static int expect_scalar(const struct kn_node *n, const char *name, const char *what,
                         struct kn_schema_ctx *ctx)
{
    if (n->type != KN_NODE_SCALAR) {
        kn_schema_error(ctx, n, "'%s' must be %s, got %s", name, what, kn_node_describe(n));
        return 0;
    }
    return 1;
}

static int parse_int_text(const char *s, long long *out)
{
    char *end;
    int neg = 0;
    const char *p = s;
    int base = 10;

    if (*p == '-' || *p == '+') {
        neg = *p == '-';
        p++;
    }
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
    } else if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O')) {
        base = 8;
        p += 2;
    }
    errno = 0;
    *out = strtoll(p, &end, base);
    if (end == p || *end || errno) {
        return KN_EINVAL;
    }
    if (neg) {
        *out = -*out;
    }
    return 0;
}

/* ---- one value ---------------------------------------------------------------------------- */

static void parse_string_list(const struct kn_field *f, const struct kn_node *n,
                              const char *name, struct kn_strlist *out,
                              struct kn_schema_ctx *ctx)
{
    if (n->type != KN_NODE_SEQ) {
        kn_schema_error(ctx, n, "'%s' must be a list, got %s", name, kn_node_describe(n));
        return;
    }
    out->items = kn_calloc(n->len ? n->len : 1, sizeof(char *));
    for (size_t i = 0; i < n->len; i++) {
        const struct kn_node *item = n->items[i];
        if (item->type != KN_NODE_SCALAR || is_null(item)) {
            kn_schema_error(ctx, item, "'%s[%zu]' must be a string, got %s", name, i,
                            kn_node_describe(item));
            continue;
        }
        out->items[out->count++] = kn_strndup(item->scalar, item->len);
    }
    if ((f->flags & KN_FIELD_NONEMPTY) && n->len == 0) {
        kn_schema_error(ctx, n, "'%s' must not be empty", name);
    }
}

static void parse_string_map(const struct kn_field *f, const struct kn_node *n,
                             const char *name, struct kn_strmap *out, struct kn_schema_ctx *ctx)
{
    if (n->type != KN_NODE_MAP) {
        kn_schema_error(ctx, n, "'%s' must be a map, got %s", name, kn_node_describe(n));
        return;
    }
    out->keys = kn_calloc(n->len ? n->len : 1, sizeof(char *));
    out->values = kn_calloc(n->len ? n->len : 1, sizeof(char *));
    for (size_t i = 0; i < n->len; i++) {
        const struct kn_pair *p = &n->pairs[i];
        if (p->value->type != KN_NODE_SCALAR) {
            kn_schema_error(ctx, p->value, "'%s.%s' must be a string, got %s", name,
                            p->key->scalar, kn_node_describe(p->value));
            continue;
        }
        out->keys[out->count] = kn_strndup(p->key->scalar, p->key->len);
        out->values[out->count] = is_null(p->value) ? kn_strdup("")
                                                    : kn_strndup(p->value->scalar, p->value->len);
        out->count++;
    }
    if ((f->flags & KN_FIELD_NONEMPTY) && n->len == 0) {
        kn_schema_error(ctx, n, "'%s' must not be empty", name);
    }
}

static void parse_list(const struct kn_field *f, const struct kn_node *n, const char *name,
                       struct kn_list *out, struct kn_schema_ctx *ctx)
{
    char saved[sizeof(ctx->path)];

    if (n->type != KN_NODE_SEQ) {
        kn_schema_error(ctx, n, "'%s' must be a list, got %s", name, kn_node_describe(n));
        return;
    }
    if ((f->flags & KN_FIELD_NONEMPTY) && n->len == 0) {
        kn_schema_error(ctx, n, "'%s' must not be empty", name);
    }
    out->items = kn_calloc(n->len ? n->len : 1, f->sub->size);
    out->count = n->len;
    memcpy(saved, ctx->path, sizeof(saved));
    for (size_t i = 0; i < n->len; i++) {
        snprintf(ctx->path, sizeof(ctx->path), "%s[%zu]", name, i);
        parse_struct(f->sub, n->items[i], &n->items[i]->loc, at(out->items, i * f->sub->size),
                     ctx);
    }
    memcpy(ctx->path, saved, sizeof(saved));
}

static void parse_value(const struct kn_field *f, const struct kn_node *n, const char *name,
                        void *obj, struct kn_schema_ctx *ctx)
{
    void *p = at(obj, f->offset);
    enum kn_scalar_kind kind = n->type == KN_NODE_SCALAR ? kn_node_scalar_kind(n) : 0;

    switch (f->type) {
    case KN_TYPE_STRING:
        if (expect_scalar(n, name, "a string", ctx)) {
            if ((f->flags & KN_FIELD_NONEMPTY) && n->len == 0) {
                kn_schema_error(ctx, n, "'%s' must not be empty", name);
            }
            *(char **)p = kn_strndup(n->scalar, n->len);
        }
        break;
    case KN_TYPE_BOOL:
        if (kind != KN_SCALAR_BOOL) {
            kn_schema_error(ctx, n, "'%s' must be true or false, got %s%s%s%s", name,
                            kn_node_describe(n), n->type == KN_NODE_SCALAR ? " '" : "",
                            n->type == KN_NODE_SCALAR ? n->scalar : "",
                            n->type == KN_NODE_SCALAR ? "'" : "");
            break;
        }
        *(int *)p = tolower((unsigned char)n->scalar[0]) == 't';
        break;
    case KN_TYPE_INT: {
        long long v;
        if (kind != KN_SCALAR_INT || parse_int_text(n->scalar, &v) < 0) {
            kn_schema_error(ctx, n, "'%s' must be an integer, got %s%s%s%s", name,
                            kn_node_describe(n), n->type == KN_NODE_SCALAR ? " '" : "",
                            n->type == KN_NODE_SCALAR ? n->scalar : "",
                            n->type == KN_NODE_SCALAR ? "'" : "");
            break;
        }
        *(long long *)p = v;
        out_of_bounds(f, n, name, (double)v, n->scalar, ctx);
        break;
    }
    case KN_TYPE_DOUBLE: {
        double v;
        char *end;
        if (kind != KN_SCALAR_INT && kind != KN_SCALAR_FLOAT) {
            kn_schema_error(ctx, n, "'%s' must be a number, got %s", name, kn_node_describe(n));
            break;
        }
        v = strtod(n->scalar, &end);
        if (*end || !isfinite(v)) {
            kn_schema_error(ctx, n, "'%s' must be a finite number, got '%s'", name, n->scalar);
            break;
        }
        *(double *)p = v;
        out_of_bounds(f, n, name, v, n->scalar, ctx);
        break;
    }
    case KN_TYPE_DURATION: {
        long long ms;
        if (!expect_scalar(n, name, "a duration like 30s, 5m or 1h", ctx)) {
            break;
        }
        if (kn_duration_parse(n->scalar, &ms) < 0) {
            kn_schema_error(ctx, n, "'%s' must be a duration like 30s, 5m or 1h, got '%s'", name,
                            n->scalar);
            break;
        }
        *(long long *)p = ms;
        out_of_bounds(f, n, name, (double)ms, n->scalar, ctx);
        break;
    }
    case KN_TYPE_PERCENT: {
        double v;
        if (!expect_scalar(n, name, "a percentage", ctx)) {
            break;
        }
        if (kn_percent_parse(n->scalar, &v) < 0) {
            kn_schema_error(ctx, n, "'%s' must be a percentage like 20 or \"20%%\", got '%s'",
                            name, n->scalar);
            break;
        }
        *(double *)p = v;
        out_of_bounds(f, n, name, v, n->scalar, ctx);
        break;
    }
    case KN_TYPE_SCALE: {
        struct kn_scale *s = p;
        long long count;
        if (!expect_scalar(n, name, "a count or a percentage", ctx)) {
            break;
        }
        if (n->len > 0 && n->scalar[n->len - 1] == '%') {
            if (kn_percent_parse(n->scalar, &s->value) < 0 || s->value <= 0 || s->value > 100) {
                kn_schema_error(ctx, n,
                                "'%s' must be a percentage of the primary above 0%% and at most "
                                "100%%, got '%s'",
                                name, n->scalar);
            }
            s->percent = 1;
        } else if (parse_int_text(n->scalar, &count) == 0) {
            s->value = (double)count;
            s->percent = 0;
            out_of_bounds(f, n, name, (double)count, n->scalar, ctx);
        } else {
            kn_schema_error(ctx, n, "'%s' must be a count like 2 or a percentage like \"20%%\", "
                            "got '%s'", name, n->scalar);
        }
        break;
    }
    case KN_TYPE_ENUM: {
        struct kn_buf allowed;
        int found = -1;
        if (!expect_scalar(n, name, "a string", ctx)) {
            break;
        }
        kn_buf_init(&allowed, KN_BUF_UNBOUNDED);
        for (int i = 0; f->enums[i]; i++) {
            if (strcmp(f->enums[i], n->scalar) == 0) {
                found = i;
            }
            kn_buf_addf(&allowed, "%s%s", i ? ", " : "", f->enums[i]);
        }
        if (found < 0) {
            kn_schema_error(ctx, n, "'%s' must be one of %s, got '%s'", name, allowed.data,
                            n->scalar);
        } else {
            *(int *)p = found;
        }
        kn_buf_release(&allowed);
        break;
    }
    case KN_TYPE_STRING_LIST:
        parse_string_list(f, n, name, p, ctx);
        break;
    case KN_TYPE_STRING_MAP:
        parse_string_map(f, n, name, p, ctx);
        break;
    case KN_TYPE_OBJECT: {
        char saved[sizeof(ctx->path)];
        memcpy(saved, ctx->path, sizeof(saved));
        snprintf(ctx->path, sizeof(ctx->path), "%s", name);
        parse_struct(f->sub, n, &n->loc, p, ctx);
        memcpy(ctx->path, saved, sizeof(saved));
        break;
    }
    case KN_TYPE_LIST:
        parse_list(f, n, name, p, ctx);
        break;
    case KN_TYPE_NODE:
        *(const struct kn_node **)p = n;
        break;
    }
}

/* Apply a field's default, parsed from its text like input would be. */
static void apply_default(const struct kn_field *f, const struct kn_loc *where,
                          const char *name, void *obj, struct kn_schema_ctx *ctx)
{
    struct kn_node def = {0};

    if (!f->def) {
        if (f->type == KN_TYPE_OBJECT) {
            /* nested defaults still apply when the whole section is absent */
            char saved[sizeof(ctx->path)];
            memcpy(saved, ctx->path, sizeof(saved));
            snprintf(ctx->path, sizeof(ctx->path), "%s", name);
            parse_struct(f->sub, NULL, where, at(obj, f->offset), ctx);
            memcpy(ctx->path, saved, sizeof(saved));
        }
        return;
    }
    if (f->type == KN_TYPE_STRING_LIST) {
        struct kn_strlist *l = at(obj, f->offset);
        l->items = kn_calloc(1, sizeof(char *));
        l->items[0] = kn_strdup(f->def);
        l->count = 1;
        return;
    }
    def.type = KN_NODE_SCALAR;
    def.scalar = (char *)(uintptr_t)f->def; /* read only below */
    def.len = strlen(f->def);
    def.loc = *where;
    parse_value(f, &def, name, obj, ctx);
}

/* The keys the fixed fields do not know, parsed by the schema the variant hook chooses into a
 * struct of its own at variant_offset. `rest` holds those pairs (nrest of them). */
static void parse_variant(const struct kn_schema *schema, const struct kn_node *node,
                          const struct kn_loc *where, struct kn_pair *rest, size_t nrest,
                          void *obj, struct kn_schema_ctx *ctx)
{
    const struct kn_schema *sub = schema->variant(obj, node, ctx);
    void **slot = at(obj, schema->variant_offset);
    struct kn_node map = {0};

    if (!sub) {
        return; /* the hook said why; its keys cannot be checked */
    }
    *slot = kn_calloc(1, sub->size);
    if (!node) {
        parse_fields(sub, schema, NULL, where, *slot, ctx);
        return;
    }
    /* a map of the other keys alone, for the variant's check hook and locations */
    map.type = KN_NODE_MAP;
    map.loc = node->loc;
    map.pairs = rest;
    map.len = nrest;
    parse_fields(sub, schema, &map, where, *slot, ctx);
}

static void parse_struct(const struct kn_schema *schema, const struct kn_node *node,
                         const struct kn_loc *where, void *obj, struct kn_schema_ctx *ctx)
{
    parse_fields(schema, NULL, node, where, obj, ctx);
}

static void parse_fields(const struct kn_schema *schema, const struct kn_schema *outer,
                         const struct kn_node *node, const struct kn_loc *where, void *obj,
                         struct kn_schema_ctx *ctx)
{
    const struct kn_node *values[KN_SCHEMA_MAX_FIELDS] = {0};
    uint64_t *set = at(obj, schema->set_offset);
    char name[sizeof(ctx->path)];
    struct kn_pair *rest = NULL;
    size_t nrest = 0;
    int wrong_type = 0;

    if (node && node->type != KN_NODE_MAP && !is_null(node)) {
        wrong_type = 1;
        kn_schema_error(ctx, node, "'%s' must be a map, got %s",
                        ctx->path[0] ? ctx->path : "document", kn_node_describe(node));
        where = &node->loc;
        node = NULL;
    }
    if (node && node->type == KN_NODE_MAP) {
        if (schema->variant) {
            rest = kn_calloc(node->len ? node->len : 1, sizeof(*rest));
        }
        for (size_t i = 0; i < node->len; i++) {
            size_t index;
            const struct kn_pair *pair = &node->pairs[i];
            if (!find_field(schema, pair->key->scalar, &index)) {
                if (rest) {
                    rest[nrest++] = *pair; /* for the variant's schema */
                } else if (!schema->other_key || !schema->other_key(pair, ctx)) {
                    unknown_key(schema, outer, pair->key, ctx);
                }
                continue;
            }
            values[index] = pair->value;
        }
    }
    for (size_t i = 0; i < schema->nfields && i < KN_SCHEMA_MAX_FIELDS; i++) {
        const struct kn_field *f = &schema->fields[i];
        join_path(name, sizeof(name), ctx->path, f->key);
        if (is_null(values[i])) {
            if (f->flags & KN_FIELD_REQUIRED) {
                if (wrong_type) {
                    continue; /* one error for the whole struct is enough */
                }
                kn_schema_error_at(ctx, values[i] ? &values[i]->loc : node ? &node->loc : where,
                                   "'%s' is required", name);
            } else {
                apply_default(f, values[i] ? &values[i]->loc : node ? &node->loc : where, name,
                              obj, ctx);
            }
            continue;
        }
        *set |= (uint64_t)1 << i;
        parse_value(f, values[i], name, obj, ctx);
    }
    if (schema->variant) {
        parse_variant(schema, node, node ? &node->loc : where, rest, nrest, obj, ctx);
        free(rest);
    }
    if (schema->check) {
        const struct kn_loc *saved = ctx->where;
        ctx->where = node ? &node->loc : where;
        schema->check(obj, node, ctx);
        ctx->where = saved;
    }
}

void kn_schema_parse(const struct kn_schema *schema, const struct kn_node *node,
                     const struct kn_loc *where, void *obj, struct kn_schema_ctx *ctx)
{
    static const struct kn_loc nowhere = {0};
    parse_struct(schema, node, where ? where : &nowhere, obj, ctx);
}

void kn_schema_release(const struct kn_schema *schema, void *obj)
{
    if (!obj) {
        return;
    }
    if (schema->release) {
        schema->release(obj);
    }
    if (schema->variant) {
        void **slot = at(obj, schema->variant_offset);
        /* asked before the fixed fields it is chosen by are freed */
        const struct kn_schema *sub = *slot ? schema->variant(obj, NULL, NULL) : NULL;
        if (sub) {
            kn_schema_release(sub, *slot);
        }
        free(*slot);
        *slot = NULL;
    }
    for (size_t i = 0; i < schema->nfields; i++) {
        const struct kn_field *f = &schema->fields[i];
        void *p = at(obj, f->offset);
        switch (f->type) {
        case KN_TYPE_STRING:
            free(*(char **)p);
            *(char **)p = NULL;
            break;
        case KN_TYPE_STRING_LIST: {
            struct kn_strlist *l = p;
            for (size_t j = 0; j < l->count; j++) {
                free(l->items[j]);
            }
            free(l->items);
            memset(l, 0, sizeof(*l));
            break;
        }
        case KN_TYPE_STRING_MAP: {
            struct kn_strmap *m = p;
            for (size_t j = 0; j < m->count; j++) {
                free(m->keys[j]);
                free(m->values[j]);
            }
            free(m->keys);
            free(m->values);
            memset(m, 0, sizeof(*m));
            break;
        }
        case KN_TYPE_OBJECT:
            kn_schema_release(f->sub, p);
            break;
        case KN_TYPE_LIST: {
            struct kn_list *l = p;
            for (size_t j = 0; j < l->count; j++) {
                kn_schema_release(f->sub, at(l->items, j * f->sub->size));
            }
            free(l->items);
            memset(l, 0, sizeof(*l));
            break;
        }
        default:
            break;
        }
    }
}

int kn_schema_isset(const struct kn_schema *schema, const void *obj, const char *key)
{
    size_t index;
    const uint64_t *set = (const uint64_t *)((const char *)obj + schema->set_offset);

    if (!find_field(schema, key, &index)) {
        return 0;
    }
    return (*set >> index) & 1;
}

const char *kn_schema_type_name(const struct kn_field *f)
{
    switch (f->type) {
    case KN_TYPE_STRING:
        return "string";
    case KN_TYPE_BOOL:
        return "bool";
    case KN_TYPE_INT:
        return "integer";
    case KN_TYPE_DOUBLE:
        return "number";
    case KN_TYPE_DURATION:
        return "duration";
    case KN_TYPE_PERCENT:
        return "percent";
    case KN_TYPE_SCALE:
        return "count or percent";
    case KN_TYPE_ENUM:
        return "enum";
    case KN_TYPE_STRING_LIST:
        return "list of strings";
    case KN_TYPE_STRING_MAP:
        return "map of strings";
    case KN_TYPE_OBJECT:
        return "map";
    case KN_TYPE_LIST:
        return "list of maps";
    case KN_TYPE_NODE:
        return "any";
    }
    return "?";
}

void kn_schema_describe(const struct kn_schema *schema, const char *prefix, struct kn_buf *buf)
{
    char path[320];

    for (size_t i = 0; i < schema->nfields; i++) {
        const struct kn_field *f = &schema->fields[i];
        join_path(path, sizeof(path), prefix, f->key);
        kn_buf_addf(buf, "| `%s` | %s", path, kn_schema_type_name(f));
        if (f->type == KN_TYPE_ENUM) {
            kn_buf_adds(buf, ":");
            for (int j = 0; f->enums[j]; j++) {
                kn_buf_addf(buf, " %s`%s`", j ? "\\| " : "", f->enums[j]);
            }
        }
        kn_buf_addf(buf, " | %s | %s |\n",
                    f->flags & KN_FIELD_REQUIRED ? "required" : f->def ? f->def : "",
                    f->help ? f->help : "");
        if (f->type == KN_TYPE_OBJECT) {
            kn_schema_describe(f->sub, path, buf);
        } else if (f->type == KN_TYPE_LIST) {
            char sub[330];
            snprintf(sub, sizeof(sub), "%s[]", path);
            kn_schema_describe(f->sub, sub, buf);
        }
    }
    if (schema->variant) {
        join_path(path, sizeof(path), prefix, "*");
        kn_buf_addf(buf, "| `%s` | any |  | %s |\n", path,
                    schema->variant_help ? schema->variant_help : "");
    }
}

/* ---- comparing -------------------------------------------------------------------------- */

static int str_differs(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") != 0;
}

static int nodes_differ(const struct kn_node *a, const struct kn_node *b)
{
    json_t *ja, *jb;
    int differs;

    if (!a || !b) {
        return a != b;
    }
    ja = kn_node_to_json(a);
    jb = kn_node_to_json(b);
    differs = !json_equal(ja, jb);
    json_decref(ja);
    json_decref(jb);
    return differs;
}

static int compare_struct(const struct kn_schema *schema, const void *a, const void *b,
                          const char *prefix, char *key, size_t size);

/* Whether field f differs between a and b; writes the differing path into key. */
static int compare_field(const struct kn_field *f, const void *a, const void *b,
                         const char *path, char *key, size_t size)
{
    const void *pa = (const char *)a + f->offset;
    const void *pb = (const char *)b + f->offset;
    char item[352]; /* path (320) and "[N]" */
    int differs = 0;

    switch (f->type) {
    case KN_TYPE_STRING:
        differs = str_differs(*(char *const *)pa, *(char *const *)pb);
        break;
    case KN_TYPE_BOOL:
    case KN_TYPE_ENUM:
        differs = *(const int *)pa != *(const int *)pb;
        break;
    case KN_TYPE_INT:
    case KN_TYPE_DURATION:
        differs = *(const long long *)pa != *(const long long *)pb;
        break;
    case KN_TYPE_DOUBLE:
    case KN_TYPE_PERCENT:
        differs = *(const double *)pa != *(const double *)pb;
        break;
    case KN_TYPE_SCALE: {
        const struct kn_scale *sa = pa, *sb = pb;
        differs = sa->value != sb->value || sa->percent != sb->percent;
        break;
    }
    case KN_TYPE_STRING_LIST: {
        const struct kn_strlist *la = pa, *lb = pb;
        differs = la->count != lb->count;
        for (size_t i = 0; !differs && i < la->count; i++) {
            differs = str_differs(la->items[i], lb->items[i]);
        }
        break;
    }
    case KN_TYPE_STRING_MAP: {
        const struct kn_strmap *ma = pa, *mb = pb;
        differs = ma->count != mb->count;
        for (size_t i = 0; !differs && i < ma->count; i++) {
            differs = str_differs(ma->keys[i], mb->keys[i]) ||
                      str_differs(ma->values[i], mb->values[i]);
        }
        break;
    }
    case KN_TYPE_OBJECT:
        return compare_struct(f->sub, pa, pb, path, key, size);
    case KN_TYPE_LIST: {
        const struct kn_list *la = pa, *lb = pb;
        if (la->count != lb->count) {
            differs = 1;
            break;
        }
        for (size_t i = 0; i < la->count; i++) {
            snprintf(item, sizeof(item), "%s[%zu]", path, i);
            if (compare_struct(f->sub, (const char *)la->items + i * f->sub->size,
                               (const char *)lb->items + i * f->sub->size, item, key, size)) {
                return 1;
            }
        }
        break;
    }
    case KN_TYPE_NODE:
        differs = nodes_differ(*(const struct kn_node *const *)pa,
                               *(const struct kn_node *const *)pb);
        break;
    }
    if (differs) {
        snprintf(key, size, "%s", path);
    }
    return differs;
}

static int compare_struct(const struct kn_schema *schema, const void *a, const void *b,
                          const char *prefix, char *key, size_t size)
{
    char path[320];

    for (size_t i = 0; i < schema->nfields; i++) {
        join_path(path, sizeof(path), prefix, schema->fields[i].key);
        if (compare_field(&schema->fields[i], a, b, path, key, size)) {
            return 1;
        }
    }
    if (schema->variant) {
        const void *va = *(void *const *)((const char *)a + schema->variant_offset);
        const void *vb = *(void *const *)((const char *)b + schema->variant_offset);
        const struct kn_schema *sa = va ? schema->variant(a, NULL, NULL) : NULL;
        const struct kn_schema *sb = vb ? schema->variant(b, NULL, NULL) : NULL;
        if (sa != sb) {
            snprintf(key, size, "%s", prefix && prefix[0] ? prefix : "*");
            return 1;
        }
        if (sa && compare_struct(sa, va, vb, prefix, key, size)) {
            return 1;
        }
    }
    return 0;
}

int kn_schema_compare(const struct kn_schema *schema, const void *a, const void *b, char *key,
                      size_t size)
{
    if (size > 0) {
        key[0] = '\0';
    }
    return compare_struct(schema, a, b, "", key, size);
}
