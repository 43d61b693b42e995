/*
 * awsQuery request bodies (ELBv2, STS) from JSON parameters, serialised as botocore's
 * QuerySerializer does: objects as `Name.Key`, lists as `Name.member.N` from 1 (an empty list as
 * `Name=`), true/false, integers in decimal, reals in their shortest exact form, RFC 3986
 * percent-encoding of everything but the unreserved characters. null members are left out.
 */
#include "cloud/aws/aws_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"

static int kn_aws_unreserved(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_' || ch == '.' || ch == '~';
}

static void kn_aws_query_escape(struct kn_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (kn_aws_unreserved(ch)) {
            kn_buf_addch(b, (char)ch);
        } else {
            kn_buf_addch(b, '%');
            kn_buf_addch(b, hex[ch >> 4]);
            kn_buf_addch(b, hex[ch & 0xf]);
        }
    }
}

/* The shortest "%g" form that reads back as the same double: 20.0 → "20", 0.1 → "0.1". */
static void kn_aws_query_real(char *out, size_t size, double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, size, "%.*g", prec, v);
        if (strtod(out, NULL) == v) {
            break;
        }
    }
}

static void kn_aws_query_pair(struct kn_buf *b, const char *name, const char *value, size_t len)
{
    kn_buf_addch(b, '&');
    kn_aws_query_escape(b, name, strlen(name));
    kn_buf_addch(b, '=');
    kn_aws_query_escape(b, value, len);
}

static void kn_aws_query_value(struct kn_buf *b, const char *name, const json_t *v)
{
    char num[64];

    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        const json_t *member;
        json_object_foreach((json_t *)(uintptr_t)v, key, member)
        {
            char *sub = kn_asprintf("%s.%s", name, key);
            kn_aws_query_value(b, sub, member);
            free(sub);
        }
        break;
    }
    case JSON_ARRAY:
        if (json_array_size(v) == 0) {
            kn_aws_query_pair(b, name, "", 0);
        }
        for (size_t i = 0; i < json_array_size(v); i++) {
            char *sub = kn_asprintf("%s.member.%zu", name, i + 1);
            kn_aws_query_value(b, sub, json_array_get(v, i));
            free(sub);
        }
        break;
    case JSON_STRING:
        kn_aws_query_pair(b, name, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        kn_aws_query_pair(b, name, num, strlen(num));
        break;
    case JSON_REAL:
        kn_aws_query_real(num, sizeof(num), json_real_value(v));
        kn_aws_query_pair(b, name, num, strlen(num));
        break;
    case JSON_TRUE:
        kn_aws_query_pair(b, name, "true", 4);
        break;
    case JSON_FALSE:
        kn_aws_query_pair(b, name, "false", 5);
        break;
    case JSON_NULL:
        break;
    }
}

char *kn_aws_query_encode(const char *action, const char *version, const json_t *params)
{
    struct kn_buf b;
    const char *key;
    const json_t *member;

    if (!action || !version || (params && !json_is_object(params))) {
        return NULL;
    }
    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    kn_buf_adds(&b, "Action=");
    kn_aws_query_escape(&b, action, strlen(action));
    kn_buf_adds(&b, "&Version=");
    kn_aws_query_escape(&b, version, strlen(version));
    if (params) {
        json_object_foreach((json_t *)(uintptr_t)params, key, member)
        {
            kn_aws_query_value(&b, key, member);
        }
    }
    return kn_buf_detach(&b, NULL);
}
