/*
 * kanaria — canonical JSON form of a manifest and its hash.
 *
 * The canonical text is what the hash covers, so it must not move between runs or machines:
 * sorted keys (byte order), no whitespace, ASCII only (JSON_ENSURE_ASCII), reals as jansson
 * prints them (17 significant digits, trimmed: 1e3 is 1000.0, 0.1 is 0.10000000000000001). A
 * jansson that printed reals differently would change the hash of manifests holding reals; the
 * typing table in tests/unit/manifests/test_canon.c pins the format.
 *
 * ASCII only means the same value always gives the same bytes whatever a log or terminal does to
 * UTF-8, and that a diff printed from repository content cannot carry control or bidi characters
 * to a terminal; the cost is that non-ASCII text reads as \uXXXX escapes in diffs.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "kanaria/alloc.h"
#include "kanaria/manifest.h"

#define KN_CANON_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII | JSON_ENCODE_ANY)

/* jansson returns NULL only when it runs out of memory (or for a caller bug such as a cycle):
 * treat it like the kn_*alloc wrappers do. */
_Noreturn static void kn_canon_die(const char *what)
{
    fprintf(stderr, "kanaria: fatal: %s\n", what);
    abort();
}

static json_t *kn_canon_must(json_t *j)
{
    if (!j) {
        kn_canon_die("out of memory building JSON");
    }
    return j;
}

/* Length of the valid UTF-8 sequence at s (n > 0 bytes left), or 0 when it is not valid: the
 * same rules as jansson (no overlong forms, no surrogates, nothing past U+10FFFF). */
static size_t kn_utf8_seq_len(const unsigned char *s, size_t n)
{
    size_t len = 0;
    unsigned cp = 0;

    if (s[0] < 0x80) {
        len = 1;
        goto out;
    } else if ((s[0] & 0xe0) == 0xc0) {
        len = 2;
        cp = s[0] & 0x1fu;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3;
        cp = s[0] & 0x0fu;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4;
        cp = s[0] & 0x07u;
    } else {
        goto bad;
    }
    if (len > n) {
        goto bad;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            goto bad;
        }
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        goto bad;
    }
    goto out;
bad:
    len = 0;
out:
    return len;
}

/* A copy of s with every invalid UTF-8 byte replaced by U+FFFD; *out_len gets its length. */
static char *kn_utf8_sanitize(const char *s, size_t len, size_t *out_len)
{
    static const char repl[] = "\xef\xbf\xbd";
    const unsigned char *u = (const unsigned char *)s;
    char *r = kn_reallocarray(NULL, len + 1, 3);
    size_t o = 0;

    for (size_t i = 0; i < len;) {
        size_t n = kn_utf8_seq_len(u + i, len - i);
        if (n == 0) {
            memcpy(r + o, repl, 3);
            o += 3;
            i++;
        } else {
            memcpy(r + o, s + i, n);
            o += n;
            i += n;
        }
    }
    r[o] = '\0';
    *out_len = o;
    return r;
}

/*
 * A JSON string from len bytes. libyaml only hands out valid UTF-8, but a node tree may be built
 * by other code: invalid bytes become U+FFFD rather than failing.
 */
static json_t *kn_canon_string(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    char *clean = NULL;
    size_t clean_len = 0;

    if (!j) {
        clean = kn_utf8_sanitize(s, len, &clean_len);
        j = kn_canon_must(json_stringn(clean, clean_len));
    }
    free(clean);
    return j;
}

static int kn_utf8_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    size_t n = 1;

    while (i < len && n > 0) {
        n = kn_utf8_seq_len(u + i, len - i);
        i += n;
    }
    return i == len;
}

/* Set key (len bytes) to value, taking the reference. The key is checked first because jansson
 * drops the value when it refuses a key. */
static void kn_canon_set(json_t *obj, const char *key, size_t len, json_t *value)
{
    char *clean = NULL;
    size_t clean_len = len;

    if (!kn_utf8_valid(key, len)) {
        clean = kn_utf8_sanitize(key, len, &clean_len);
    }
    if (json_object_setn_new(obj, clean ? clean : key, clean_len, value) < 0) {
        kn_canon_die("out of memory building JSON");
    }
    free(clean);
}

static int kn_digit_value(char c)
{
    int v = -1;

    if (c >= '0' && c <= '9') {
        v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
        v = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
        v = c - 'A' + 10;
    }
    return v;
}

/* An integer too large for json_int_t, as a real. Decimal goes through strtod (correctly
 * rounded); hex and octal are summed digit by digit, which is exact up to 2^53 and deterministic
 * past it. Past the range of a double, the same strings as .inf. */
static json_t *kn_canon_big_int(const char *text, const char *digits, int base, int neg)
{
    double d = 0;

    if (base == 10) {
        d = strtod(text, NULL);
    } else {
        for (const char *p = digits; *p; p++) {
            d = d * base + kn_digit_value(*p);
        }
        d = neg ? -d : d;
    }
    return kn_canon_must(isinf(d) ? json_string(d < 0 ? "-inf" : "inf") : json_real(d));
}

/* [-+]?[0-9]+ | [-+]?0x[0-9a-fA-F]+ | [-+]?0o[0-7]+; anything else NULL (read as a string). */
static json_t *kn_canon_int(const char *s, size_t len)
{
    const char *p = s;
    char *end = NULL;
    int neg = 0;
    int base = 10;
    unsigned long long mag = 0;
    unsigned long long max = 0;
    json_t *j = NULL;

    if (*p == '+' || *p == '-') {
        neg = *p == '-';
        p++;
    }
    if (p[0] == '0' && p[1] == 'x') {
        base = 16;
        p += 2;
    } else if (p[0] == '0' && p[1] == 'o') {
        base = 8;
        p += 2;
    }
    /* strtoull would also take spaces, a sign or a second 0x here */
    if (*p == '\0') {
        goto out;
    }
    for (const char *q = p; *q; q++) {
        if (kn_digit_value(*q) < 0 || kn_digit_value(*q) >= base) {
            goto out;
        }
    }
    errno = 0;
    mag = strtoull(p, &end, base);
    if (end != s + len) {
        goto out;
    }
    max = neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
    if (errno == ERANGE || mag > max) {
        j = kn_canon_big_int(s, p, base, neg);
    } else if (neg) {
        /* -(LLONG_MAX + 1) is representable, its magnitude as a long long is not */
        j = kn_canon_must(
            json_integer(mag > (unsigned long long)LLONG_MAX ? LLONG_MIN : -(json_int_t)mag));
    } else {
        j = kn_canon_must(json_integer((json_int_t)mag));
    }
out:
    return j;
}

static size_t kn_span_digits(const char *p)
{
    size_t n = 0;

    while (p[n] >= '0' && p[n] <= '9') {
        n++;
    }
    return n;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? — checked here rather than trusted to
 * strtod, which would also take spaces, hex floats and "infinity". */
static int kn_is_core_float(const char *p)
{
    size_t whole = 0;
    size_t frac = 0;
    int ok = 0;

    if (*p == '+' || *p == '-') {
        p++;
    }
    whole = kn_span_digits(p);
    p += whole;
    if (*p == '.') {
        p++;
        frac = kn_span_digits(p);
        p += frac;
    }
    if (whole == 0 && frac == 0) {
        goto out;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') {
            p++;
        }
        if (kn_span_digits(p) == 0) {
            goto out;
        }
        p += kn_span_digits(p);
    }
    ok = *p == '\0';
out:
    return ok;
}

/* A core-schema float; .inf/.nan (and anything too large for a double) become strings because
 * JSON has no such numbers. NULL when the text is not a float after all (read as a string).
 * strtod follows LC_NUMERIC: kanaria never calls setlocale, so that is the C locale. */
static json_t *kn_canon_float(const char *s)
{
    const char *p = s;
    const char *special = NULL;
    double d = 0;
    json_t *j = NULL;

    if (*p == '+' || *p == '-') {
        p++;
    }
    if (!strcmp(p, ".inf") || !strcmp(p, ".Inf") || !strcmp(p, ".INF")) {
        special = *s == '-' ? "-inf" : "inf";
    } else if (!strcmp(p, ".nan") || !strcmp(p, ".NaN") || !strcmp(p, ".NAN")) {
        special = "nan";
    } else if (kn_is_core_float(s)) {
        d = strtod(s, NULL);
        if (isinf(d)) {
            special = d < 0 ? "-inf" : "inf";
        }
    } else {
        goto out;
    }
    j = kn_canon_must(special ? json_string(special) : json_real(d));
out:
    return j;
}

static json_t *kn_canon_scalar(const struct kn_node *n)
{
    enum kn_scalar_kind kind = n->quoted ? KN_SCALAR_STR : kn_node_scalar_kind(n);
    json_t *j = NULL;

    /* The typed kinds never hold a NUL; if one does, the text is not what it seems. */
    if (kind != KN_SCALAR_STR && strlen(n->scalar) != n->len) {
        kind = KN_SCALAR_STR;
    }
    switch (kind) {
    case KN_SCALAR_NULL:
        j = json_null();
        break;
    case KN_SCALAR_BOOL:
        j = json_boolean(n->scalar[0] == 't' || n->scalar[0] == 'T');
        break;
    case KN_SCALAR_INT:
        j = kn_canon_int(n->scalar, n->len);
        break;
    case KN_SCALAR_FLOAT:
        j = kn_canon_float(n->scalar);
        break;
    case KN_SCALAR_STR:
        break;
    }
    if (!j) {
        j = kn_canon_string(n->scalar, n->len);
    }
    return j;
}

/* A NULL node (or one of no known type) is JSON null. Map keys are taken as their text,
 * whatever they would read as as values: `1: x` gives {"1": "x"}. */
json_t *kn_node_to_json(const struct kn_node *n)
{
    json_t *j = NULL;

    if (!n) {
        j = json_null();
        goto out;
    }
    switch (n->type) {
    case KN_NODE_SCALAR:
        j = kn_canon_scalar(n);
        break;
    case KN_NODE_MAP:
        j = kn_canon_must(json_object());
        for (size_t i = 0; i < n->len; i++) {
            const struct kn_node *key = n->pairs[i].key;
            kn_canon_set(j, key->scalar, key->len, kn_node_to_json(n->pairs[i].value));
        }
        break;
    case KN_NODE_SEQ:
        j = kn_canon_must(json_array());
        for (size_t i = 0; i < n->len; i++) {
            if (json_array_append_new(j, kn_node_to_json(n->items[i])) < 0) {
                kn_canon_die("out of memory building JSON");
            }
        }
        break;
    default:
        j = json_null();
        break;
    }
out:
    return j;
}

/* NULL for NULL (an absent value). The text comes from jansson's allocator: free() it. */
char *kn_json_canonical(const json_t *j)
{
    char *s = NULL;

    if (j) {
        s = json_dumps(j, KN_CANON_FLAGS);
        if (!s) {
            kn_canon_die("json_dumps failed (out of memory or a cyclic value)");
        }
    }
    return s;
}

void kn_json_hash(const json_t *j, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    char *text = kn_json_canonical(j);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;

    /* hash "null" for NULL, like the JSON it stands for */
    const char *data = text ? text : "null";
    if (!EVP_Digest(data, strlen(data), md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
        kn_canon_die("SHA-256 failed in libcrypto");
    }
    for (unsigned i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xf];
    }
    out[64] = '\0';
    free(text);
}
