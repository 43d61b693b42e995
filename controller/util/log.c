/*
 * kanaria — logging (include/kanaria/log.h).
 *
 * A line is built in a stack buffer and written with one write(2), so lines from different
 * threads never interleave. The level and format are atomics: kn_log_setup may run while
 * other threads already log.
 */
#include "kanaria/log.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kanaria/alloc.h"
#include "kanaria/error.h"

/* The longest line written, newline included; longer lines are cut (JSON: the message is). */
#define KN_LOG_LINE_MAX 8192
/* The longest message kept by kn_log_write before formatting. */
#define KN_LOG_MSG_MAX 4096
/* The most fields a `who` fragment contributes. */
#define KN_LOG_FIELDS_MAX 16

static atomic_int kn_log_min = KN_LOG_INFO;
static atomic_int kn_log_fmt = KN_LOG_LOGFMT;

static const char *const kn_log_level_names[] = {"debug", "info", "warn", "error", "off"};
static const char *const kn_log_format_names[] = {"logfmt", "json"};

/* One `key=value` word of a `who` fragment, pointing into a private copy of it. */
struct kn_log_field {
    const char *key;
    const char *value;
};

struct kn_log_who {
    char text[512];
    const char *who;
    struct kn_log_field fields[KN_LOG_FIELDS_MAX];
    size_t nfields;
};

/* Appends that truncate at the end of the buffer instead of failing. */
struct kn_log_out {
    char *buf;
    size_t size;
    size_t len;
};

void kn_log_setup(enum kn_log_level min, enum kn_log_format format)
{
    atomic_store_explicit(&kn_log_min, (int)min, memory_order_relaxed);
    atomic_store_explicit(&kn_log_fmt, (int)format, memory_order_relaxed);
}

int kn_log_level_parse(const char *s, enum kn_log_level *out)
{
    int rc = KN_EINVAL;

    for (int i = KN_LOG_DEBUG; i <= KN_LOG_OFF; i++) {
        if (s && strcmp(s, kn_log_level_names[i]) == 0) {
            *out = (enum kn_log_level)i;
            rc = 0;
            break;
        }
    }
    return rc;
}

int kn_log_format_parse(const char *s, enum kn_log_format *out)
{
    int rc = KN_EINVAL;

    for (int i = KN_LOG_LOGFMT; i <= KN_LOG_JSON; i++) {
        if (s && strcmp(s, kn_log_format_names[i]) == 0) {
            *out = (enum kn_log_format)i;
            rc = 0;
            break;
        }
    }
    return rc;
}

int kn_log_enabled(enum kn_log_level level)
{
    int min = atomic_load_explicit(&kn_log_min, memory_order_relaxed);
    return level < KN_LOG_OFF && (int)level >= min;
}

static const char *kn_log_level_name(enum kn_log_level level)
{
    return level >= KN_LOG_DEBUG && level < KN_LOG_OFF ? kn_log_level_names[level] : "unknown";
}

/* RFC 3339 in UTC with milliseconds: 2026-11-25T19:40:01.123Z */
static void kn_log_time(char out[32], long long now_ms)
{
    time_t secs = (time_t)(now_ms / 1000);
    int ms = (int)(now_ms % 1000);
    struct tm tm;

    if (ms < 0) {
        ms += 1000;
        secs--;
    }
    if (!gmtime_r(&secs, &tm)) {
        memset(&tm, 0, sizeof(tm));
    }
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", ms);
}

/*
 * Split a `who` fragment ("reconcile app=hello msg=\"a b\"") into the speaker and its fields.
 * Values may be logfmt-quoted. A first word that is already `k=v` is a field; the speaker is
 * then "kanaria". Fields named like the fixed ones (time, level, who, msg) are dropped so that
 * they cannot shadow them.
 */
static void kn_log_parse_who(struct kn_log_who *w, const char *who)
{
    snprintf(w->text, sizeof(w->text), "%s", who ? who : "");
    w->who = "kanaria";
    w->nfields = 0;

    char *p = w->text;
    int first = 1;
    for (;;) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (!*p) {
            break;
        }
        char *key = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '=') {
            p++;
        }
        char *value = NULL;
        if (*p == '=') {
            *p++ = '\0';
            if (*p == '"') {
                /* Unescape in place: the output never gets longer than the input. */
                char *dst = ++p;
                value = dst;
                while (*p && *p != '"') {
                    if (*p == '\\' && p[1]) {
                        p++;
                        *dst++ = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p == 'r' ? '\r' : *p;
                        p++;
                    } else {
                        *dst++ = *p++;
                    }
                }
                if (*p == '"') {
                    p++;
                }
                /* Terminate after the closing quote was looked at: dst may sit on it. */
                *dst = '\0';
            } else {
                value = p;
                while (*p && *p != ' ' && *p != '\t') {
                    p++;
                }
            }
        }
        int more = *p != '\0';
        if (more && (*p == ' ' || *p == '\t')) {
            *p++ = '\0';
        }
        if (!value && first) {
            w->who = key;
        } else if (*key && w->nfields < KN_LOG_FIELDS_MAX && strcmp(key, "time") != 0 &&
                   strcmp(key, "level") != 0 && strcmp(key, "who") != 0 &&
                   strcmp(key, "msg") != 0) {
            w->fields[w->nfields].key = key;
            w->fields[w->nfields].value = value ? value : "";
            w->nfields++;
        }
        first = 0;
        if (!more) {
            break;
        }
    }
}

static void kn_log_put(struct kn_log_out *o, const char *s, size_t n)
{
    if (o->len + 1 >= o->size) {
        return;
    }
    size_t room = o->size - 1 - o->len;
    if (n > room) {
        n = room;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void kn_log_puts(struct kn_log_out *o, const char *s)
{
    kn_log_put(o, s, strlen(s));
}

static int kn_log_needs_quotes(const char *v)
{
    if (!*v) {
        return 1;
    }
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == 0x7f) {
            return 1;
        }
    }
    return 0;
}

/* ` key=value`, the value quoted and escaped when it has to be. */
static void kn_log_put_kv(struct kn_log_out *o, const char *key, const char *value)
{
    if (o->len) {
        kn_log_put(o, " ", 1);
    }
    kn_log_puts(o, key);
    kn_log_put(o, "=", 1);
    if (!kn_log_needs_quotes(value)) {
        kn_log_puts(o, value);
        return;
    }
    kn_log_put(o, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"':
            kn_log_put(o, "\\\"", 2);
            break;
        case '\\':
            kn_log_put(o, "\\\\", 2);
            break;
        case '\n':
            kn_log_put(o, "\\n", 2);
            break;
        case '\r':
            kn_log_put(o, "\\r", 2);
            break;
        case '\t':
            kn_log_put(o, "\\t", 2);
            break;
        default:
            if (*p < ' ' || *p == 0x7f) {
                snprintf(esc, sizeof(esc), "\\u%04x", *p);
                kn_log_puts(o, esc);
            } else {
                kn_log_put(o, (const char *)p, 1);
            }
            break;
        }
    }
    kn_log_put(o, "\"", 1);
}

/* Length of the longest prefix of s (at most n bytes) that is valid UTF-8. */
static size_t kn_log_utf8_prefix(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        unsigned char c = p[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xe0) == 0xc0 ? 2
                     : (c & 0xf0) == 0xe0 ? 3
                     : (c & 0xf8) == 0xf0 ? 4
                                          : 0;
        if (len == 0 || (len == 2 && c < 0xc2) || i + len > n) {
            break;
        }
        size_t k = 1;
        while (k < len && (p[i + k] & 0xc0) == 0x80) {
            k++;
        }
        if (k < len) {
            break;
        }
        i += len;
    }
    return i;
}

/* A JSON string for any bytes: invalid UTF-8 sequences become '?'. */
static json_t *kn_log_json_string(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    if (j) {
        return j;
    }
    char *copy = kn_malloc(n + 1);
    size_t out = 0;
    size_t i = 0;
    while (i < n) {
        size_t ok = kn_log_utf8_prefix(s + i, n - i);
        memcpy(copy + out, s + i, ok);
        out += ok;
        i += ok;
        if (i < n) {
            copy[out++] = '?';
            i++;
        }
    }
    j = json_stringn(copy, out);
    free(copy);
    return j ? j : json_string("?");
}

static size_t kn_log_format_json(char *buf, size_t size, const char *stamp, const char *level,
                                 const struct kn_log_who *w, const char *msg)
{
    size_t msg_len = strlen(msg);
    size_t len = 0;

    /* When the line does not fit, shorten the message (each byte removed shortens the output
     * by at least one) and try once more, so that the line stays valid JSON. */
    for (int attempt = 0; attempt < 2; attempt++) {
        json_t *obj = json_object();
        json_object_set_new(obj, "time", json_string(stamp));
        json_object_set_new(obj, "level", json_string(level));
        json_object_set_new(obj, "who", kn_log_json_string(w->who, strlen(w->who)));
        for (size_t i = 0; i < w->nfields; i++) {
            json_t *v = kn_log_json_string(w->fields[i].value, strlen(w->fields[i].value));
            /* A key that is not valid UTF-8 cannot be a JSON key: the field is left out. */
            json_object_set_new(obj, w->fields[i].key, v);
        }
        json_object_set_new(obj, "msg", kn_log_json_string(msg, msg_len));
        char *text = json_dumps(obj, JSON_COMPACT);
        json_decref(obj);
        len = text ? strlen(text) : 0;
        if (len < size || attempt == 1) {
            len = len < size ? len : size - 1;
            memcpy(buf, text ? text : "", len);
            buf[len] = '\0';
            free(text);
            break;
        }
        free(text);
        size_t excess = len - (size - 1);
        msg_len = excess < msg_len ? kn_log_utf8_prefix(msg, msg_len - excess) : 0;
    }
    return len;
}

int kn_log_format_line(char *buf, unsigned long size, long long now_ms, enum kn_log_level level,
                       enum kn_log_format format, const char *who, const char *msg)
{
    struct kn_log_who w;
    struct kn_log_out o = {.buf = buf, .size = size, .len = 0};
    char stamp[32];
    size_t len = 0;

    if (size == 0) {
        goto out;
    }
    buf[0] = '\0';
    msg = msg ? msg : "";
    kn_log_time(stamp, now_ms);
    kn_log_parse_who(&w, who);
    if (format == KN_LOG_JSON) {
        len = kn_log_format_json(buf, size, stamp, kn_log_level_name(level), &w, msg);
        goto out;
    }

    kn_log_put_kv(&o, "time", stamp);
    kn_log_put_kv(&o, "level", kn_log_level_name(level));
    kn_log_put_kv(&o, "who", w.who);
    for (size_t i = 0; i < w.nfields; i++) {
        kn_log_put_kv(&o, w.fields[i].key, w.fields[i].value);
    }
    kn_log_put_kv(&o, "msg", msg);
    len = o.len;
out:
    return (int)len;
}

static long long kn_log_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kn_log_write(enum kn_log_level level, const char *who, const char *fmt, ...)
{
    char msg[KN_LOG_MSG_MAX];
    char line[KN_LOG_LINE_MAX];
    va_list ap;
    int saved_errno = errno;

    if (!kn_log_enabled(level)) {
        goto out;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    enum kn_log_format format =
        (enum kn_log_format)atomic_load_explicit(&kn_log_fmt, memory_order_relaxed);
    int n = kn_log_format_line(line, sizeof(line) - 1, kn_log_now_ms(), level, format, who, msg);
    line[n++] = '\n';
    /* One write per line; a short write to a pipe only happens past PIPE_BUF, and then the
     * rest still has to go out. */
    const char *p = line;
    size_t left = (size_t)n;
    while (left > 0) {
        ssize_t w = write(STDERR_FILENO, p, left);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            break;
        }
        p += w;
        left -= (size_t)w;
    }
out:
    errno = saved_errno;
}
