/*
 * Notification templates: a small Mustache subset (see template.h).
 */
#include "template.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/error.h"

struct kn_template_run {
    const char *tmpl;
    const json_t *ctx;
    enum kn_template_escape esc;
    struct kn_buf *out; /* NULL: only check */
    char *why;
    size_t why_size;
};

/* One tag: its kind ('\0' a value, '#', '^', '/'), its name, and where the text after it
 * starts. */
struct kn_template_tag {
    char kind;
    char name[64];
    size_t start; /* offset of "{{" */
    size_t end;   /* offset after "}}" */
};

static int kn_template_fail(struct kn_template_run *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int kn_template_fail(struct kn_template_run *r, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->why, r->why_size, fmt, ap);
    va_end(ap);
    return code;
}

/* The next tag at or after *pos into t: 1 found, 0 none, < 0 malformed. */
static int kn_template_next_tag(struct kn_template_run *r, size_t pos, struct kn_template_tag *t)
{
    const char *open = strstr(r->tmpl + pos, "{{");
    const char *p, *close;
    size_t n;

    if (!open) {
        return 0;
    }
    t->start = (size_t)(open - r->tmpl);
    p = open + 2;
    close = strstr(p, "}}");
    if (!close) {
        return kn_template_fail(r, KN_EINVAL, "unclosed tag at offset %zu", t->start);
    }
    t->end = (size_t)(close - r->tmpl) + 2;
    t->kind = (*p == '#' || *p == '^' || *p == '/') ? *p++ : '\0';
    while (*p == ' ') {
        p++;
    }
    n = 0;
    while (p < close && *p != ' ') {
        char c = *p++;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_') ||
            n + 1 >= sizeof(t->name)) {
            return kn_template_fail(r, KN_EINVAL, "bad field name in the tag at offset %zu", t->start);
        }
        t->name[n++] = c;
    }
    t->name[n] = '\0';
    while (p < close && *p == ' ') {
        p++;
    }
    if (n == 0 || p != close) {
        return kn_template_fail(r, KN_EINVAL, "bad field name in the tag at offset %zu", t->start);
    }
    return 1;
}

static int kn_template_truthy(const json_t *v)
{
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_STRING:
        return json_string_length(v) > 0;
    case JSON_INTEGER:
        return json_integer_value(v) != 0;
    case JSON_REAL:
        return json_real_value(v) != 0;
    case JSON_TRUE:
        return 1;
    case JSON_ARRAY:
        return json_array_size(v) > 0;
    case JSON_OBJECT:
        return json_object_size(v) > 0;
    default:
        return 0;
    }
}

static int kn_template_add(struct kn_template_run *r, const char *s, size_t len)
{
    if (!r->out || len == 0) {
        return 0;
    }
    if (kn_buf_add(r->out, s, len) < 0) {
        return kn_template_fail(r, KN_ETOOBIG, "the text is longer than the limit (%zu bytes)",
                                KN_TEMPLATE_MAX);
    }
    return 0;
}

static int kn_template_value(struct kn_template_run *r, const json_t *v)
{
    char num[64];
    const char *s = NULL;
    size_t len = 0;
    char *esc = NULL;
    int rc = 0;

    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_STRING:
        s = json_string_value(v);
        len = json_string_length(v);
        break;
    case JSON_INTEGER:
        len = (size_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        s = num;
        break;
    case JSON_REAL:
        len = (size_t)snprintf(num, sizeof(num), "%.17g", json_real_value(v));
        s = num;
        break;
    case JSON_TRUE:
        s = "true";
        len = 4;
        break;
    default:
        goto out;
    }
    if (r->esc == KN_TEMPLATE_JSON) {
        /* jansson writes the string with its quotes: keep the inside */
        json_t *str = json_stringn(s, len);
        esc = str ? json_dumps(str, JSON_ENCODE_ANY) : NULL;
        json_decref(str);
        if (!esc) {
            goto out; /* not UTF-8: left out rather than sent broken */
        }
        s = esc + 1;
        len = strlen(esc) - 2;
    }
    rc = kn_template_add(r, s, len);
out:
    free(esc);
    return rc;
}

/* Render (or only check) from *pos until the end or the closing tag of `section` (NULL: the
 * end); *pos is left after what was consumed. */
static int kn_template_block(struct kn_template_run *r, size_t *pos, const char *section,
                             size_t section_at, int emit, int depth)
{
    struct kn_template_tag t;
    int rc;

    for (;;) {
        if ((rc = kn_template_next_tag(r, *pos, &t)) < 0) {
            return rc;
        }
        if (rc == 0) {
            size_t rest = strlen(r->tmpl + *pos);
            if (section) {
                return kn_template_fail(r, KN_EINVAL, "unclosed section '%s' opened at offset %zu",
                                        section, section_at);
            }
            if (emit && (rc = kn_template_add(r, r->tmpl + *pos, rest)) < 0) {
                return rc;
            }
            *pos += rest;
            return 0;
        }
        if (emit && (rc = kn_template_add(r, r->tmpl + *pos, t.start - *pos)) < 0) {
            return rc;
        }
        *pos = t.end;
        if (t.kind == '/') {
            if (!section || strcmp(section, t.name) != 0) {
                return kn_template_fail(r, KN_EINVAL,
                                        "closing tag '%s' at offset %zu closes no open section",
                                        t.name, t.start);
            }
            return 0;
        }
        if (t.kind == '#' || t.kind == '^') {
            int on;
            if (depth + 1 > KN_TEMPLATE_DEPTH) {
                return kn_template_fail(r, KN_EINVAL,
                                        "section '%s' at offset %zu nests too deep", t.name,
                                        t.start);
            }
            on = kn_template_truthy(r->ctx ? json_object_get(r->ctx, t.name) : NULL);
            if (t.kind == '^') {
                on = !on;
            }
            if ((rc = kn_template_block(r, pos, t.name, t.start, emit && on, depth + 1)) < 0) {
                return rc;
            }
            continue;
        }
        if (emit && (rc = kn_template_value(r, json_object_get(r->ctx, t.name))) < 0) {
            return rc;
        }
    }
}

int kn_template_check(const char *tmpl, char *why, size_t why_size)
{
    struct kn_template_run r = {.tmpl = tmpl ? tmpl : "", .why = why, .why_size = why_size};
    size_t pos = 0;

    return kn_template_block(&r, &pos, NULL, 0, 0, 0);
}

int kn_template_render(char **out, const char *tmpl, const json_t *ctx,
                       enum kn_template_escape esc, char *why, size_t why_size)
{
    struct kn_buf b;
    struct kn_template_run r = {
        .tmpl = tmpl ? tmpl : "", .ctx = ctx, .esc = esc, .out = &b, .why = why,
        .why_size = why_size};
    size_t pos = 0;
    int rc;

    *out = NULL;
    kn_buf_init(&b, KN_TEMPLATE_MAX);
    /* checked first, so that a malformed template never renders half */
    if ((rc = kn_template_check(r.tmpl, why, why_size)) < 0) {
        goto out;
    }
    if ((rc = kn_template_block(&r, &pos, NULL, 0, 1, 0)) < 0) {
        goto out;
    }
    *out = kn_buf_detach(&b, NULL);
out:
    kn_buf_release(&b);
    return rc;
}
