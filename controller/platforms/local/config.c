/*
 * The `local` platform's keys in kanaria.yaml: one table per section, with the checks a table
 * cannot say (a socket when HAProxy is not managed, HOST:PORT forms, a port range that runs
 * forwards). Messages name the platform entry they are in:
 *
 *     kanaria.yaml:6:9: platforms[0].haproxy: 'socket' is required when 'managed' is false
 */
#include "platforms/local/config.h"

#include <stddef.h>

#define KN_LOCAL_HOST_PORT "HOST:PORT with a port from 1 to 65535 (IPv6 as [::1]:7070)"

static void kn_local_check_haproxy(void *obj, const struct kn_node *node,
                                   struct kn_schema_ctx *ctx)
{
    const struct kn_local_haproxy_config *h = obj;
    const struct kn_node *managed;
    const struct kn_node *bind;
    char host[256];
    int port;

    if (!node) {
        goto out; /* absent: the defaults are valid */
    }
    managed = kn_node_get(node, "managed");
    /* only when managed is a valid false: a bad value was reported by the table */
    if (!h->managed && !h->socket && managed && kn_node_scalar_kind(managed) == KN_SCALAR_BOOL) {
        kn_schema_error_in(ctx, ctx->path, managed,
                           "'socket' is required when 'managed' is false");
    }
    bind = kn_node_get(node, "metricsBind");
    if (h->metrics_bind && bind &&
        kn_hostport_parse(h->metrics_bind, host, sizeof(host), &port) < 0) {
        kn_schema_error_in(ctx, ctx->path, bind, "'metricsBind' must be " KN_LOCAL_HOST_PORT
                           ", got '%s'", h->metrics_bind);
    }
out:
    return;
}

static const struct kn_field kn_local_haproxy_fields[] = {
    {.key = "managed",
     .type = KN_TYPE_BOOL,
     .offset = offsetof(struct kn_local_haproxy_config, managed),
     .def = "true",
     .help = "true: kanaria runs HAProxy itself; false: it drives an existing one through socket"},
    {.key = "socket",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_local_haproxy_config, socket),
     .flags = KN_FIELD_NONEMPTY,
     .help = "HAProxy runtime API socket (level admin); required when managed is false, "
             "under dataDir by default"},
    {.key = "binary",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_local_haproxy_config, binary),
     .flags = KN_FIELD_NONEMPTY,
     .def = "haproxy",
     .help = "HAProxy executable a managed HAProxy runs (looked up in PATH)"},
    {.key = "metricsBind",
     .type = KN_TYPE_STRING,
     .offset = offsetof(struct kn_local_haproxy_config, metrics_bind),
     .flags = KN_FIELD_NONEMPTY,
     .def = "127.0.0.1:8404",
     .help = "HOST:PORT where a managed HAProxy serves its Prometheus exporter (/metrics)"},
};

static const struct kn_schema kn_local_haproxy_schema = {
    .name = "haproxy",
    KN_SCHEMA_FIELDS(kn_local_haproxy_fields),
    .size = sizeof(struct kn_local_haproxy_config),
    .set_offset = offsetof(struct kn_local_haproxy_config, set),
    .check = kn_local_check_haproxy,
};

static void kn_local_check_ports(void *obj, const struct kn_node *node, struct kn_schema_ctx *ctx)
{
    const struct kn_local_ports *r = obj;

    /* out-of-range values were reported by the table already */
    if (r->min >= 1024 && r->max <= 65535 && r->min > r->max) {
        kn_schema_error_in(ctx, ctx->path, node,
                           "'min' (%lld) must not be greater than 'max' (%lld)", r->min, r->max);
    }
}

static const struct kn_field kn_local_ports_fields[] = {
    {.key = "min",
     .type = KN_TYPE_INT,
     .offset = offsetof(struct kn_local_ports, min),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .def = "20000",
     .min = 1024,
     .max = 65535,
     .help = "lowest loopback port given to an app instance"},
    {.key = "max",
     .type = KN_TYPE_INT,
     .offset = offsetof(struct kn_local_ports, max),
     .flags = KN_FIELD_MIN | KN_FIELD_MAX,
     .def = "29999",
     .min = 1024,
     .max = 65535,
     .help = "highest loopback port given to an app instance (at least min)"},
};

static const struct kn_schema kn_local_ports_schema = {
    .name = "ports",
    KN_SCHEMA_FIELDS(kn_local_ports_fields),
    .size = sizeof(struct kn_local_ports),
    .set_offset = offsetof(struct kn_local_ports, set),
    .check = kn_local_check_ports,
};

static const struct kn_field kn_local_config_fields[] = {
    {.key = "haproxy",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_local_config, haproxy),
     .sub = &kn_local_haproxy_schema,
     .help = "the HAProxy in front of the app instances"},
    {.key = "ports",
     .type = KN_TYPE_OBJECT,
     .offset = offsetof(struct kn_local_config, ports),
     .sub = &kn_local_ports_schema,
     .help = "the range of ports app instances listen on"},
};

const struct kn_schema kn_local_config_schema = {
    .name = "local platform",
    KN_SCHEMA_FIELDS(kn_local_config_fields),
    .size = sizeof(struct kn_local_config),
    .set_offset = offsetof(struct kn_local_config, set),
};
