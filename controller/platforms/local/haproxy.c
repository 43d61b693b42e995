/*
 * The HAProxy side of the local platform (haproxy.h): runtime-API commands and replies, weights,
 * the generated configuration, the admin-socket client and the managed master process.
 */
#include "platforms/local/haproxy.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "kanaria/alloc.h"
#include "kanaria/fd.h"
#include "kanaria/schema.h"

#define KN_HAPROXY_COMMAND_TIMEOUT_MS  5000u
#define KN_HAPROXY_CHECK_TIMEOUT_MS    10000u
#define KN_HAPROXY_CHECK_OUTPUT_MAX    (64u << 10) /* what `haproxy -c` may print that we keep */
#define KN_HAPROXY_PATH_MAX            4096
#define KN_HAPROXY_MAX_COUNT           100000 /* instances per variant kn_haproxy_weights accepts */
#define KN_HAPROXY_QUOTE_MAX           300    /* how much of HAProxy's answer goes into a message */
#define KN_HAPROXY_PROMETHEUS_FRONTEND "kanaria_prometheus"
/* The longest path a Unix socket address holds (libuv 1.44 would silently cut a longer one). */
#define KN_SUN_PATH_MAX (sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1)

/* Arguments for uv_spawn, which takes char *[]: string literals are const here. */
static char kn_haproxy_arg_check[] = "-c";
static char kn_haproxy_arg_file[] = "-f";
static char kn_haproxy_arg_master[] = "-W";
static char kn_haproxy_arg_pid[] = "-p";

/* HAProxy's words for success where an empty reply is not what it says. */
#define KN_HAPROXY_ADDED   "New server registered."
#define KN_HAPROXY_DELETED "Server deleted."

/* ---- validation ---------------------------------------------------------------------------- */

static bool kn_haproxy_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

static bool kn_haproxy_addr_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == ':' || c == '-';
}

/* Characters that end or change a word in haproxy.cfg, or that HAProxy expands. */
static bool kn_haproxy_path_char(char c)
{
    return (unsigned char)c > 0x20 && (unsigned char)c != 0x7f && !strchr("\"'\\#$", c);
}

/* "'x'" or "byte 0x0a" for a character that a message must not print raw. */
static const char *kn_haproxy_describe_char(char c, char *buf, size_t size)
{
    if ((unsigned char)c > 0x20 && (unsigned char)c < 0x7f) {
        snprintf(buf, size, "'%c'", c);
    } else {
        snprintf(buf, size, "byte 0x%02x", (unsigned)(unsigned char)c);
    }
    return buf;
}

bool kn_haproxy_name_valid(const char *name)
{
    bool ok = name && *name;

    for (size_t i = 0; ok && name[i]; i++) {
        ok = i < KN_HAPROXY_NAME_MAX && kn_haproxy_name_char(name[i]);
    }
    return ok;
}

/* A backend or server name (`what`), with a message that never echoes the bad byte raw. */
static int kn_haproxy_check_name(const char *what, const char *name, struct kn_error *err)
{
    int rc = 0;
    char desc[16];
    size_t len = name ? strlen(name) : 0;
    size_t suffix = strlen(KN_HAPROXY_ROUTE_SUFFIX);

    /* an app's route backend: its name and the suffix no app name has */
    if (strcmp(what, "backend") == 0 && len > suffix &&
        strcmp(name + len - suffix, KN_HAPROXY_ROUTE_SUFFIX) == 0) {
        len -= suffix;
    }
    if (len == 0) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "haproxy %s name is empty", what);
        goto out;
    }
    if (len > KN_HAPROXY_NAME_MAX) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "haproxy %s name is longer than %d characters",
                          what, KN_HAPROXY_NAME_MAX);
        goto out;
    }
    for (size_t i = 0; i < len; i++) {
        if (!kn_haproxy_name_char(name[i])) {
            rc = kn_error_set(err, KN_EINVAL, NULL,
                              "haproxy %s name has %s at offset %zu: only letters, digits, '.', "
                              "'_' and '-' are allowed",
                              what, kn_haproxy_describe_char(name[i], desc, sizeof(desc)), i);
            goto out;
        }
    }
out:
    return rc;
}

static int kn_haproxy_check_addr(const char *addr, struct kn_error *err)
{
    int rc = 0;
    char desc[16];
    size_t len = addr ? strlen(addr) : 0;

    if (len == 0 || len > KN_HAPROXY_ADDR_MAX) {
        rc = kn_error_set(err, KN_EINVAL, NULL,
                          "haproxy server address must have 1 to %d "
                          "characters",
                          KN_HAPROXY_ADDR_MAX);
        goto out;
    }
    for (size_t i = 0; i < len; i++) {
        if (!kn_haproxy_addr_char(addr[i])) {
            rc = kn_error_set(err, KN_EINVAL, NULL,
                              "haproxy server address has %s at offset %zu: only letters, "
                              "digits, '.', ':' and '-' are allowed",
                              kn_haproxy_describe_char(addr[i], desc, sizeof(desc)), i);
            goto out;
        }
    }
out:
    return rc;
}

static int kn_haproxy_check_port(int port, struct kn_error *err)
{
    int rc = 0;

    if (port < 1 || port > 65535) {
        rc = kn_error_set(err, KN_EINVAL, NULL,
                          "haproxy server port must be between 1 and "
                          "65535, got %d",
                          port);
    }
    return rc;
}

static int kn_haproxy_check_weight(int weight, struct kn_error *err)
{
    int rc = 0;

    if (weight < 0 || weight > KN_HAPROXY_WEIGHT_MAX) {
        rc = kn_error_set(err, KN_EINVAL, NULL,
                          "haproxy server weight must be between 0 and "
                          "%d, got %d",
                          KN_HAPROXY_WEIGHT_MAX, weight);
    }
    return rc;
}

/* A file path written into haproxy.cfg (`what` names it in the message). */
static int kn_haproxy_check_path(const char *what, const char *path, struct kn_error *err)
{
    int rc = 0;
    char desc[16];
    size_t len = path ? strlen(path) : 0;

    if (len == 0 || len > KN_HAPROXY_PATH_MAX) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "haproxy %s must have 1 to %d characters", what,
                          KN_HAPROXY_PATH_MAX);
        goto out;
    }
    for (size_t i = 0; i < len; i++) {
        if (!kn_haproxy_path_char(path[i])) {
            rc = kn_error_set(err, KN_EINVAL, NULL,
                              "haproxy %s has %s at offset %zu: spaces, quotes, '\\', '#' and "
                              "'$' are not allowed",
                              what, kn_haproxy_describe_char(path[i], desc, sizeof(desc)), i);
            goto out;
        }
    }
out:
    return rc;
}

/* "HOST:PORT" for a `bind` line; HOST may be empty or '*' (every address) or a bracketed IPv6
 * address. `what` names the owner in the message. */
static int kn_haproxy_check_bind(const char *what, const char *bind, struct kn_error *err)
{
    int rc = 0;
    const char *colon = bind ? strrchr(bind, ':') : NULL;
    long port = 0;

    if (!colon || strlen(bind) > KN_HAPROXY_ADDR_MAX + 6) {
        goto bad;
    }
    for (const char *p = bind; p < colon; p++) {
        if (!kn_haproxy_addr_char(*p) && *p != '*' && *p != '[' && *p != ']') {
            goto bad;
        }
    }
    if (!colon[1] || strlen(colon + 1) > 5) {
        goto bad;
    }
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9') {
            goto bad;
        }
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535) {
        goto bad;
    }
    goto out;
bad:
    rc = kn_error_set(err, KN_EINVAL, NULL,
                      "%s bind must be ADDRESS:PORT with a port from 1 "
                      "to 65535 (like 127.0.0.1:8080)",
                      what);
out:
    return rc;
}

static int kn_haproxy_check_target(const char *backend, const char *server, struct kn_error *err)
{
    int rc;

    if ((rc = kn_haproxy_check_name("backend", backend, err)) < 0) {
        goto out;
    }
    rc = kn_haproxy_check_name("server", server, err);
out:
    return rc;
}

/* ---- commands ------------------------------------------------------------------------------ */

const char *kn_haproxy_admin_name(enum kn_haproxy_admin state)
{
    const char *name = "?";

    switch (state) {
    case KN_HAPROXY_READY:
        name = "ready";
        break;
    case KN_HAPROXY_DRAIN:
        name = "drain";
        break;
    case KN_HAPROXY_MAINT:
        name = "maint";
        break;
    }
    return name;
}

int kn_haproxy_cmd_add_server(char **out, const char *backend, const char *server, const char *addr,
                              int port, int weight, struct kn_error *err)
{
    int rc;

    if ((rc = kn_haproxy_check_target(backend, server, err)) < 0 ||
        (rc = kn_haproxy_check_addr(addr, err)) < 0 ||
        (rc = kn_haproxy_check_port(port, err)) < 0 ||
        (rc = kn_haproxy_check_weight(weight, err)) < 0) {
        goto out;
    }
    *out = kn_asprintf("add server %s/%s %s:%d weight %d", backend, server, addr, port, weight);
out:
    return rc;
}

int kn_haproxy_cmd_enable_server(char **out, const char *backend, const char *server,
                                 struct kn_error *err)
{
    int rc;

    if ((rc = kn_haproxy_check_target(backend, server, err)) < 0) {
        goto out;
    }
    *out = kn_asprintf("enable server %s/%s", backend, server);
out:
    return rc;
}

int kn_haproxy_cmd_set_weight(char **out, const char *backend, const char *server, int weight,
                              struct kn_error *err)
{
    int rc;

    if ((rc = kn_haproxy_check_target(backend, server, err)) < 0 ||
        (rc = kn_haproxy_check_weight(weight, err)) < 0) {
        goto out;
    }
    *out = kn_asprintf("set weight %s/%s %d", backend, server, weight);
out:
    return rc;
}

int kn_haproxy_cmd_set_state(char **out, const char *backend, const char *server,
                             enum kn_haproxy_admin state, struct kn_error *err)
{
    int rc;

    if ((rc = kn_haproxy_check_target(backend, server, err)) < 0) {
        goto out;
    }
    if (state != KN_HAPROXY_READY && state != KN_HAPROXY_DRAIN && state != KN_HAPROXY_MAINT) {
        rc = kn_error_set(err, KN_EINVAL, NULL,
                          "haproxy server state must be ready, drain or "
                          "maint, got %d",
                          (int)state);
        goto out;
    }
    *out = kn_asprintf("set server %s/%s state %s", backend, server, kn_haproxy_admin_name(state));
out:
    return rc;
}

int kn_haproxy_cmd_del_server(char **out, const char *backend, const char *server,
                              struct kn_error *err)
{
    int rc;

    if ((rc = kn_haproxy_check_target(backend, server, err)) < 0) {
        goto out;
    }
    *out = kn_asprintf("del server %s/%s", backend, server);
out:
    return rc;
}

int kn_haproxy_cmd_show_servers_state(char **out, const char *backend, struct kn_error *err)
{
    int rc = 0;

    if (!backend) {
        *out = kn_strdup("show servers state");
        goto out;
    }
    if ((rc = kn_haproxy_check_name("backend", backend, err)) < 0) {
        goto out;
    }
    *out = kn_asprintf("show servers state %s", backend);
out:
    return rc;
}

/* ---- replies ------------------------------------------------------------------------------- */

static bool kn_starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool kn_haproxy_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The first line with text in reply, without surrounding blanks: *len bytes from the result. */
static const char *kn_haproxy_first_line(const char *reply, size_t *len)
{
    const char *p = reply;
    size_t n = 0;

    while (kn_haproxy_space(*p)) {
        p++;
    }
    while (p[n] && p[n] != '\n') {
        n++;
    }
    while (n > 0 && kn_haproxy_space(p[n - 1])) {
        n--;
    }
    *len = n;
    return p;
}

/* Is the whole reply (blanks aside) exactly `text`? */
static bool kn_haproxy_reply_is(const char *reply, const char *text)
{
    size_t len;
    const char *line = kn_haproxy_first_line(reply, &len);
    const char *rest = line + len;

    while (kn_haproxy_space(*rest)) {
        rest++;
    }
    return len == strlen(text) && memcmp(line, text, len) == 0 && *rest == '\0';
}

/* Does the reply start with a format version line ("1\n"), as a server-state dump does? */
static bool kn_haproxy_reply_is_state_dump(const char *reply)
{
    size_t i = 0;

    while (reply[i] >= '0' && reply[i] <= '9') {
        i++;
    }
    return i > 0 && (reply[i] == '\n' || (reply[i] == '\r' && reply[i + 1] == '\n'));
}

/* KN_EIO quoting HAProxy's first line; `what` is the command or the operation. */
static int kn_haproxy_refused(const char *what, const char *reply, struct kn_error *err)
{
    size_t len;
    const char *line = kn_haproxy_first_line(reply, &len);

    if (len == 0) {
        line = "(empty reply)";
        len = strlen(line);
    }
    if (len > KN_HAPROXY_QUOTE_MAX) {
        len = KN_HAPROXY_QUOTE_MAX;
    }
    return kn_error_set(err, KN_EIO, NULL, "haproxy refused '%.200s': %.*s", what, (int)len, line);
}

int kn_haproxy_reply_check(const char *command, const char *reply, struct kn_error *err)
{
    int rc = 0;
    bool ok;
    size_t len;
    const char *line;

    if (kn_starts_with(command, "add server ")) {
        ok = kn_haproxy_reply_is(reply, KN_HAPROXY_ADDED);
    } else if (kn_starts_with(command, "del server ")) {
        ok = kn_haproxy_reply_is(reply, KN_HAPROXY_DELETED);
    } else if (kn_starts_with(command, "show servers state")) {
        ok = kn_haproxy_reply_is_state_dump(reply);
    } else if (kn_starts_with(command, "set ") || kn_starts_with(command, "enable ") ||
               kn_starts_with(command, "disable ") || kn_starts_with(command, "clear ")) {
        ok = kn_haproxy_reply_is(reply, "");
    } else {
        line = kn_haproxy_first_line(reply, &len);
        ok = !kn_starts_with(line, "Unknown command") && !kn_starts_with(line, "Permission denied");
    }
    if (!ok) {
        rc = kn_haproxy_refused(command, reply, err);
    }
    return rc;
}

/* Split a line at runs of blanks, in place; the fields go to a growing *fields array. */
static size_t kn_haproxy_split(char *line, char ***fields, size_t *cap)
{
    size_t n = 0;
    char *p = line;

    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r') {
            *p++ = '\0';
        }
        if (!*p) {
            break;
        }
        if (n == *cap) {
            *cap = *cap ? *cap * 2 : 32;
            *fields = kn_reallocarray(*fields, *cap, sizeof(**fields));
        }
        (*fields)[n++] = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r') {
            p++;
        }
    }
    return n;
}

/* A whole decimal number within lo..hi. */
static bool kn_haproxy_parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    long v;
    bool ok = false;

    if (*s < '0' || *s > '9') {
        goto out;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) {
        goto out;
    }
    *out = (int)v;
    ok = true;
out:
    return ok;
}

enum kn_haproxy_col {
    KN_COL_BACKEND,
    KN_COL_NAME,
    KN_COL_ADDR,
    KN_COL_OP,
    KN_COL_ADMIN,
    KN_COL_WEIGHT,
    KN_COL_PORT,
    KN_COL_COUNT,
};

static const char *const kn_haproxy_col_names[KN_COL_COUNT] = {
    [KN_COL_BACKEND] = "be_name",       [KN_COL_NAME] = "srv_name",
    [KN_COL_ADDR] = "srv_addr",         [KN_COL_OP] = "srv_op_state",
    [KN_COL_ADMIN] = "srv_admin_state", [KN_COL_WEIGHT] = "srv_uweight",
    [KN_COL_PORT] = "srv_port",
};

static enum kn_haproxy_admin kn_haproxy_admin_of(int admin_state)
{
    enum kn_haproxy_admin a = KN_HAPROXY_READY;

    if (admin_state & (KN_HAPROXY_ADMF_FMAINT | KN_HAPROXY_ADMF_IMAINT | KN_HAPROXY_ADMF_CMAINT |
                       KN_HAPROXY_ADMF_RMAINT | KN_HAPROXY_ADMF_HMAINT)) {
        a = KN_HAPROXY_MAINT;
    } else if (admin_state & (KN_HAPROXY_ADMF_FDRAIN | KN_HAPROXY_ADMF_IDRAIN)) {
        a = KN_HAPROXY_DRAIN;
    }
    return a;
}

/* Fill one row from its fields; col[] maps each needed column to its field index. */
static int kn_haproxy_parse_row(struct kn_haproxy_server_state *st, char **f, size_t nf,
                                const size_t col[KN_COL_COUNT], unsigned line, struct kn_error *err)
{
    int rc = 0;
    size_t need = 0;
    const char *bad = NULL;

    for (int c = 0; c < KN_COL_COUNT; c++) {
        if (col[c] != SIZE_MAX) {
            need = col[c] + 1 > need ? col[c] + 1 : need;
        }
    }
    if (nf < need) {
        rc = kn_error_set(err, KN_EPARSE, NULL,
                          "haproxy server state line %u: %zu fields, "
                          "expected at least %zu",
                          line, nf, need);
        goto out;
    }
    if (!kn_haproxy_parse_int(f[col[KN_COL_OP]], 0, 255, &st->op_state)) {
        bad = kn_haproxy_col_names[KN_COL_OP];
    } else if (!kn_haproxy_parse_int(f[col[KN_COL_ADMIN]], 0, INT_MAX, &st->admin_state)) {
        bad = kn_haproxy_col_names[KN_COL_ADMIN];
    } else if (!kn_haproxy_parse_int(f[col[KN_COL_WEIGHT]], 0, KN_HAPROXY_WEIGHT_MAX,
                                     &st->weight)) {
        bad = kn_haproxy_col_names[KN_COL_WEIGHT];
    } else if (!kn_haproxy_parse_int(f[col[KN_COL_PORT]], 0, 65535, &st->port)) {
        bad = kn_haproxy_col_names[KN_COL_PORT];
    }
    if (bad) {
        rc = kn_error_set(err, KN_EPARSE, NULL,
                          "haproxy server state line %u: %s is not a "
                          "number in range",
                          line, bad);
        goto out;
    }
    st->admin = kn_haproxy_admin_of(st->admin_state);
    st->backend = kn_strdup(col[KN_COL_BACKEND] != SIZE_MAX ? f[col[KN_COL_BACKEND]] : "");
    st->name = kn_strdup(f[col[KN_COL_NAME]]);
    st->addr = kn_strdup(f[col[KN_COL_ADDR]]);
out:
    return rc;
}

/* Column indexes from the "# be_id be_name ..." line (fields without the '#'); only be_name
 * may be missing (SIZE_MAX). */
static int kn_haproxy_parse_columns(size_t col[KN_COL_COUNT], char **f, size_t nf,
                                    struct kn_error *err)
{
    int rc = 0;

    for (int c = 0; c < KN_COL_COUNT; c++) {
        col[c] = SIZE_MAX;
        for (size_t i = 0; i < nf; i++) {
            if (strcmp(f[i], kn_haproxy_col_names[c]) == 0) {
                col[c] = i;
                break;
            }
        }
        if (col[c] == SIZE_MAX && c != KN_COL_BACKEND) {
            rc = kn_error_set(err, KN_EPARSE, NULL,
                              "haproxy server state line 2: no column "
                              "'%s'",
                              kn_haproxy_col_names[c]);
            goto out;
        }
    }
out:
    return rc;
}

int kn_haproxy_parse_servers_state(struct kn_haproxy_server_state **out, size_t *count,
                                   const char *reply, struct kn_error *err)
{
    int rc = 0;
    char *copy = NULL;
    char **fields = NULL;
    size_t cap = 0;
    size_t nf;
    size_t col[KN_COL_COUNT];
    struct kn_haproxy_server_state *rows = NULL;
    size_t nrows = 0;
    size_t rows_cap = 0;
    unsigned line = 0;
    char *next;

    if (!kn_haproxy_reply_is_state_dump(reply)) {
        rc = kn_haproxy_refused("show servers state", reply, err);
        goto out;
    }
    copy = kn_strdup(reply);
    for (char *p = copy; p; p = next) {
        next = strchr(p, '\n');
        if (next) {
            *next++ = '\0';
        }
        line++;
        nf = kn_haproxy_split(p, &fields, &cap);
        if (line == 1) {
            if (nf != 1 || strcmp(fields[0], "1") != 0) {
                rc = kn_error_set(err, KN_EPARSE, NULL,
                                  "haproxy server state format version "
                                  "%.20s is not supported (kanaria reads version 1)",
                                  fields[0]);
                goto out;
            }
            continue;
        }
        if (line == 2) {
            if (nf < 1 || strcmp(fields[0], "#") != 0) {
                rc = kn_error_set(err, KN_EPARSE, NULL,
                                  "haproxy server state line 2: expected "
                                  "the '# be_id be_name ...' column names");
                goto out;
            }
            if ((rc = kn_haproxy_parse_columns(col, fields + 1, nf - 1, err)) < 0) {
                goto out;
            }
            continue;
        }
        if (nf == 0) {
            continue;
        }
        if (nrows == rows_cap) {
            rows_cap = rows_cap ? rows_cap * 2 : 8;
            rows = kn_reallocarray(rows, rows_cap, sizeof(*rows));
        }
        memset(&rows[nrows], 0, sizeof(rows[nrows]));
        if ((rc = kn_haproxy_parse_row(&rows[nrows], fields, nf, col, line, err)) < 0) {
            goto out;
        }
        nrows++;
    }
    if (line < 2) {
        rc = kn_error_set(err, KN_EPARSE, NULL, "haproxy server state has no column names");
        goto out;
    }
    *out = nrows ? rows : NULL;
    *count = nrows;
    if (!nrows) {
        free(rows);
    }
    rows = NULL;
out:
    kn_haproxy_servers_state_free(rows, nrows);
    free(fields);
    free(copy);
    return rc;
}

static void kn_haproxy_live_server_set(struct kn_haproxy_live_server *s, const char *name,
                                       const char *state, int weight, int expected)
{
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->state, sizeof(s->state), "%s", state);
    s->weight = weight;
    s->expected_weight = expected;
}

size_t kn_haproxy_live_servers(struct kn_haproxy_live_server *out, size_t max, const char *const *names,
                               const int *expected, size_t n,
                               const struct kn_haproxy_server_state *rows, size_t nrows)
{
    size_t count = 0;

    for (size_t i = 0; i < n; i++, count++) {
        const struct kn_haproxy_server_state *row = NULL;
        for (size_t r = 0; r < nrows && !row; r++) {
            row = strcmp(rows[r].name, names[i]) == 0 ? &rows[r] : NULL;
        }
        if (count < max) {
            kn_haproxy_live_server_set(&out[count], names[i],
                                       row ? kn_haproxy_admin_name(row->admin) : "missing",
                                       row ? row->weight : 0, expected[i]);
        }
    }
    for (size_t r = 0; r < nrows; r++) {
        bool known = false;
        for (size_t i = 0; i < n && !known; i++) {
            known = strcmp(rows[r].name, names[i]) == 0;
        }
        if (!known) {
            if (count < max) {
                kn_haproxy_live_server_set(&out[count], rows[r].name,
                                           kn_haproxy_admin_name(rows[r].admin), rows[r].weight,
                                           -1);
            }
            count++;
        }
    }
    return count;
}

int kn_haproxy_server_drift(const struct kn_haproxy_live_server *s, char *out, size_t size)
{
    size_t len;

    out[0] = '\0';
    if (s->expected_weight < 0) {
        snprintf(out, size, "%s is not a server kanaria registered", s->name);
    } else if (strcmp(s->state, "missing") == 0) {
        snprintf(out, size, "%s is missing from haproxy (expected ready)", s->name);
    } else if (strcmp(s->state, "maint") == 0) {
        snprintf(out, size, "%s is in maintenance (expected ready)", s->name);
    } else if (strcmp(s->state, "ready") != 0) {
        snprintf(out, size, "%s is in state %s (expected ready)", s->name, s->state);
    }
    len = strlen(out);
    if (s->expected_weight >= 0 && strcmp(s->state, "missing") != 0 &&
        s->weight != s->expected_weight && len + 1 < size) {
        snprintf(out + len, size - len, "%s%s weight %d (expected %d)", len ? "; " : "", s->name,
                 s->weight, s->expected_weight);
    }
    return out[0] != '\0';
}

/* A row and where HAProxy listed it: the sort keeps HAProxy's order within a backend. */
struct kn_haproxy_row_at {
    struct kn_haproxy_server_state row;
    size_t at;
};

static int kn_haproxy_row_cmp(const void *x, const void *y)
{
    const struct kn_haproxy_row_at *a = x;
    const struct kn_haproxy_row_at *b = y;
    int c = strcmp(a->row.backend, b->row.backend);

    return c ? c : (a->at > b->at) - (a->at < b->at);
}

void kn_haproxy_servers_state_sort(struct kn_haproxy_server_state *rows, size_t count)
{
    struct kn_haproxy_row_at *tmp;

    if (count < 2) {
        return;
    }
    tmp = kn_calloc(count, sizeof(*tmp));
    for (size_t i = 0; i < count; i++) {
        tmp[i].row = rows[i];
        tmp[i].at = i;
    }
    qsort(tmp, count, sizeof(*tmp), kn_haproxy_row_cmp);
    for (size_t i = 0; i < count; i++) {
        rows[i] = tmp[i].row;
    }
    free(tmp);
}

size_t kn_haproxy_servers_state_find(const struct kn_haproxy_server_state *rows, size_t count,
                                     const char *backend, size_t *first)
{
    size_t lo = 0, hi = count, end;

    /* the first row whose backend is not before `backend` */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(rows[mid].backend, backend) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    for (end = lo; end < count && strcmp(rows[end].backend, backend) == 0; end++) {
    }
    *first = lo;
    return end - lo;
}

struct kn_haproxy_server_state *
kn_haproxy_servers_state_copy(const struct kn_haproxy_server_state *rows, size_t count)
{
    struct kn_haproxy_server_state *out = NULL;

    if (count == 0) {
        return NULL;
    }
    out = kn_calloc(count, sizeof(*out));
    for (size_t i = 0; i < count; i++) {
        out[i] = rows[i];
        out[i].backend = kn_strdup(rows[i].backend);
        out[i].name = kn_strdup(rows[i].name);
        out[i].addr = kn_strdup(rows[i].addr);
    }
    return out;
}

void kn_haproxy_servers_state_free(struct kn_haproxy_server_state *states, size_t count)
{
    for (size_t i = 0; states && i < count; i++) {
        free(states[i].backend);
        free(states[i].name);
        free(states[i].addr);
    }
    free(states);
}

/* ---- weights ------------------------------------------------------------------------------- */

void kn_haproxy_shares(const int count[KN_VARIANT_COUNT], const int weight[KN_VARIANT_COUNT],
                       double out_percent[KN_VARIANT_COUNT])
{
    double total = 0;

    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        total += (double)count[v] * weight[v];
    }
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        out_percent[v] = total > 0 ? 100.0 * count[v] * weight[v] / total : 0;
    }
}

/* The worst |share - percent| of a candidate. */
static double kn_haproxy_split_error(const double percent[KN_VARIANT_COUNT],
                                     const int count[KN_VARIANT_COUNT],
                                     const int weight[KN_VARIANT_COUNT])
{
    double share[KN_VARIANT_COUNT];
    double worst = 0;

    kn_haproxy_shares(count, weight, share);
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        worst = fmax(worst, fabs(share[v] - percent[v]));
    }
    return worst;
}

static int kn_haproxy_clamp_weight(double w)
{
    return w < 1 ? 1 : w > KN_HAPROXY_WEIGHT_MAX ? KN_HAPROXY_WEIGHT_MAX : (int)w;
}

int kn_haproxy_weights(const double percent[KN_VARIANT_COUNT], const int count[KN_VARIANT_COUNT],
                       int out_weight_per_server[KN_VARIANT_COUNT])
{
    int rc = 0;
    double sum = 0;
    double ideal[KN_VARIANT_COUNT] = {0}; /* per-server weight relative to the biggest */
    double ideal_max = 0;
    int top = -1; /* the variant with the biggest ideal weight */
    int others[KN_VARIANT_COUNT];
    int nothers = 0;
    int best[KN_VARIANT_COUNT] = {0};
    double best_error = INFINITY;

    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        if (!isfinite(percent[v]) || percent[v] < 0 || percent[v] > 100 || count[v] < 0 ||
            count[v] > KN_HAPROXY_MAX_COUNT || (percent[v] > 0 && count[v] == 0)) {
            rc = KN_EINVAL;
            goto out;
        }
        sum += percent[v];
        if (percent[v] > 0) {
            ideal[v] = percent[v] / count[v];
            if (top < 0 || ideal[v] > ideal_max) {
                top = v;
                ideal_max = ideal[v];
            }
        }
    }
    if (fabs(sum - 100) > 0.01 || top < 0) {
        rc = KN_EINVAL;
        goto out;
    }
    for (int v = 0; v < KN_VARIANT_COUNT; v++) {
        if (v != top && percent[v] > 0) {
            others[nothers++] = v;
        }
    }
    /* Try every weight of the top variant, largest first so that ties keep the largest weights,
     * and each rounding (down or up) of the others: at most 256 * 4 candidates. */
    for (int m = KN_HAPROXY_WEIGHT_MAX; m >= 1; m--) {
        for (unsigned mask = 0; mask < (1u << nothers); mask++) {
            int w[KN_VARIANT_COUNT] = {0};
            w[top] = m;
            for (int i = 0; i < nothers; i++) {
                double exact = m * ideal[others[i]] / ideal_max;
                w[others[i]] =
                    kn_haproxy_clamp_weight(mask & (1u << i) ? ceil(exact) : floor(exact));
            }
            double e = kn_haproxy_split_error(percent, count, w);
            if (e < best_error - 1e-9) {
                best_error = e;
                memcpy(best, w, sizeof(best));
            }
        }
    }
    memcpy(out_weight_per_server, best, sizeof(best));
out:
    return rc;
}

/* ---- configuration ------------------------------------------------------------------------- */

static int kn_haproxy_check_cfg_app(const struct kn_haproxy_cfg_app *app,
                                    const struct kn_haproxy_cfg *cfg, size_t index,
                                    struct kn_error *err)
{
    int rc;
    char what[KN_HAPROXY_NAME_MAX + 16];

    if ((rc = kn_haproxy_check_name("backend", app->name, err)) < 0) {
        goto out;
    }
    for (size_t i = 0; i < index; i++) {
        if (strcmp(cfg->apps[i].name, app->name) == 0) {
            rc = kn_error_set(err, KN_EINVAL, NULL, "haproxy backend '%s' is listed twice",
                              app->name);
            goto out;
        }
    }
    snprintf(what, sizeof(what), "app '%s'", app->name);
    if ((rc = kn_haproxy_check_bind(what, app->bind, err)) < 0) {
        goto out;
    }
    for (size_t s = 0; s < app->server_count; s++) {
        const struct kn_haproxy_cfg_server *srv = &app->servers[s];
        if ((rc = kn_haproxy_check_name("server", srv->name, err)) < 0 ||
            (rc = kn_haproxy_check_addr(srv->addr, err)) < 0 ||
            (rc = kn_haproxy_check_port(srv->port, err)) < 0 ||
            (rc = kn_haproxy_check_weight(srv->weight, err)) < 0) {
            goto out;
        }
        for (size_t t = 0; t < s; t++) {
            if (strcmp(app->servers[t].name, srv->name) == 0) {
                rc = kn_error_set(err, KN_EINVAL, NULL, "haproxy server '%s/%s' is listed twice",
                                  app->name, srv->name);
                goto out;
            }
        }
    }
out:
    return rc;
}

static int kn_haproxy_check_cfg(const struct kn_haproxy_cfg *cfg, struct kn_error *err)
{
    int rc;

    if ((rc = kn_haproxy_check_path("stats socket path", cfg->stats_socket, err)) < 0 ||
        (cfg->pid_file && (rc = kn_haproxy_check_path("pid file path", cfg->pid_file, err)) < 0)) {
        goto out;
    }
    if (strlen(cfg->stats_socket) > KN_SUN_PATH_MAX) {
        rc = kn_error_set(err, KN_EINVAL, NULL,
                          "haproxy stats socket path is longer than %zu "
                          "bytes",
                          KN_SUN_PATH_MAX);
        goto out;
    }
    if (cfg->prometheus_bind &&
        (rc = kn_haproxy_check_bind("prometheus exporter", cfg->prometheus_bind, err)) < 0) {
        goto out;
    }
    for (size_t a = 0; a < cfg->app_count; a++) {
        if ((rc = kn_haproxy_check_cfg_app(&cfg->apps[a], cfg, a, err)) < 0 ||
            (cfg->apps[a].route_map &&
             (rc = kn_haproxy_check_path("route map path", cfg->apps[a].route_map, err)) < 0)) {
            goto out;
        }
    }
out:
    return rc;
}

/* ---- routes -------------------------------------------------------------------------------- */

/* c as a regex atom: letters and digits themselves, anything else \xHH. */
static void kn_haproxy_regex_char(struct kn_buf *b, char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        kn_buf_addf(b, "%c", c);
    } else {
        kn_buf_addf(b, "\\x%02x", (unsigned)(unsigned char)c);
    }
}

/* A user's regex as it goes into the map: a leading '^' and a trailing '$' dropped (the whole
 * value matches anyway), and the characters a map line or a runtime command would split on
 * (space, ';', '#') as \xHH. NULL for a control character. */
static int kn_haproxy_regex_user(struct kn_buf *b, const char *re)
{
    size_t len = strlen(re);

    if (len && re[0] == '^') {
        re++;
        len--;
    }
    if (len && re[len - 1] == '$' && (len < 2 || re[len - 2] != '\\')) {
        len--;
    }
    for (size_t i = 0; i < len; i++) {
        char c = re[i];
        if ((unsigned char)c < 0x20 || (unsigned char)c == 0x7f) {
            return KN_EINVAL;
        }
        if (c == '\\' && i + 1 < len) {
            if (strchr(" ;#", re[i + 1])) {
                kn_haproxy_regex_char(b, re[++i]);
            } else {
                kn_buf_addf(b, "\\%c", re[++i]);
            }
        } else if (strchr(" ;#", c)) {
            kn_haproxy_regex_char(b, c);
        } else {
            kn_buf_addf(b, "%c", c);
        }
    }
    return 0;
}

int kn_haproxy_route_regex(char **out, const struct kn_route_match *m, struct kn_error *err)
{
    struct kn_buf b;
    int rc = 0;

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    if (!m || !m->name || !m->name[0] || !m->value || strlen(m->name) > 128 ||
        strlen(m->value) > 256) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "a route needs a name and a value");
        goto out;
    }
    /* req.hdrs: one "name: value\r\n" per header, names in lower case */
    kn_buf_adds(&b, "(?:^|\\n)");
    if (m->field == KN_ROUTE_COOKIE) {
        kn_buf_adds(&b, "cookie:(?:[^\\r\\n]*\\x3b)?\\x20*");
        for (const char *c = m->name; *c; c++) {
            kn_haproxy_regex_char(&b, *c);
        }
        kn_buf_adds(&b, "=");
    } else {
        for (const char *c = m->name; *c; c++) {
            kn_haproxy_regex_char(&b, (char)tolower((unsigned char)*c));
        }
        kn_buf_adds(&b, ":\\x20*");
    }
    kn_buf_adds(&b, "(?:");
    if (m->regex) {
        if ((rc = kn_haproxy_regex_user(&b, m->value)) < 0) {
            rc = kn_error_set(err, KN_EINVAL, NULL, "route regex has a control character");
            goto out;
        }
    } else {
        for (const char *c = m->value; *c; c++) {
            kn_haproxy_regex_char(&b, *c);
        }
    }
    kn_buf_adds(&b, m->field == KN_ROUTE_COOKIE ? ")(?:\\x3b|\\r)" : ")\\r");
    *out = kn_buf_detach(&b, NULL);
out:
    kn_buf_release(&b);
    return rc;
}

int kn_haproxy_cmd_add_map(char **out, const char *map, const char *key, struct kn_error *err)
{
    struct kn_buf b;
    int rc = 0;

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    if ((rc = kn_haproxy_check_path("route map path", map, err)) < 0) {
        goto out;
    }
    if (!key || !*key) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "route map key is empty");
        goto out;
    }
    kn_buf_addf(&b, "add map %s ", map);
    for (const char *c = key; *c; c++) {
        if ((unsigned char)*c <= 0x20 || *c == ';' || (unsigned char)*c == 0x7f) {
            rc = kn_error_set(err, KN_EINVAL, NULL, "route map key has a space, ';' or a "
                              "control character");
            goto out;
        }
        /* the runtime API takes a backslash as an escape: doubled, HAProxy keeps one */
        kn_buf_adds(&b, *c == '\\' ? "\\\\" : (char[]){*c, 0});
    }
    kn_buf_adds(&b, " 1");
    *out = kn_buf_detach(&b, NULL);
out:
    kn_buf_release(&b);
    return rc;
}

int kn_haproxy_cmd_map(char **out, const char *verb, const char *map, struct kn_error *err)
{
    int rc;

    if ((rc = kn_haproxy_check_path("route map path", map, err)) < 0) {
        return rc;
    }
    *out = kn_asprintf("%s map %s", verb, map);
    return 0;
}

int kn_haproxy_parse_map(char ***out, size_t *count, const char *reply, struct kn_error *err)
{
    char **keys = NULL;
    size_t n = 0;
    const char *line = reply ? reply : "";

    while (*line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > 0) {
            /* "0x55d0c3a2b130 KEY VALUE" */
            const char *sp = memchr(line, ' ', len);
            const char *sp2 = sp ? memchr(sp + 1, ' ', len - (size_t)(sp + 1 - line)) : NULL;
            if (strncmp(line, "0x", 2) != 0 || !sp || !sp2) {
                for (size_t i = 0; i < n; i++) {
                    free(keys[i]);
                }
                free(keys);
                return kn_error_set(err, KN_EIO, NULL, "haproxy: %.*s", (int)(len > 200 ? 200 : len),
                                    line);
            }
            keys = kn_reallocarray(keys, n + 1, sizeof(*keys));
            keys[n++] = kn_strndup(sp + 1, (size_t)(sp2 - sp - 1));
        }
        line += len + (end ? 1 : 0);
    }
    *out = keys;
    *count = n;
    return 0;
}

static int kn_haproxy_map_info_cmp(const void *x, const void *y)
{
    const struct kn_haproxy_map_info *a = x;
    const struct kn_haproxy_map_info *b = y;

    return strcmp(a->file, b->file);
}

/* A file name against a map of the list (bsearch). */
static int kn_haproxy_map_file_cmp(const void *key, const void *elem)
{
    const struct kn_haproxy_map_info *m = elem;

    return strcmp(key, m->file);
}

/* One line of the list: "ID (FILE) DESCRIPTION... entry_cnt=N"; 0 and *out filled, or -1 for a
 * line that is not one (the "# id (file) description" header). */
static int kn_haproxy_map_line(struct kn_haproxy_map_info *out, const char *line, size_t len)
{
    const char *lparen = memchr(line, '(', len);
    const char *rparen = NULL;
    const char *end = line + len;
    const char *cnt;
    long long entries = -1;

    if (len == 0 || line[0] == '#' || !lparen) {
        return -1;
    }
    /* a file name holds no space (kn_haproxy_check_path), so ") " ends it */
    for (const char *p = lparen + 1; p + 1 < end && !rparen; p++) {
        rparen = p[0] == ')' && p[1] == ' ' ? p : NULL;
    }
    if (!rparen && end > lparen + 1 && end[-1] == ')') {
        rparen = end - 1;
    }
    if (!rparen || rparen == lparen + 1) {
        return -1;
    }
    for (cnt = rparen; cnt < end; cnt++) {
        if ((size_t)(end - cnt) > 11 && memcmp(cnt, " entry_cnt=", 11) == 0) {
            char *stop;
            errno = 0;
            entries = strtoll(cnt + 11, &stop, 10);
            if (errno || stop == cnt + 11 || entries < 0 || (stop < end && *stop != ' ')) {
                entries = -1;
            }
            break;
        }
    }
    out->file = kn_strndup(lparen + 1, (size_t)(rparen - lparen - 1));
    out->entries = entries;
    return 0;
}

int kn_haproxy_parse_map_list(struct kn_haproxy_map_info **out, size_t *count, const char *reply,
                              struct kn_error *err)
{
    struct kn_haproxy_map_info *maps = NULL;
    size_t n = 0;
    const char *line = reply ? reply : "";
    size_t first_len;
    const char *first = kn_haproxy_first_line(line, &first_len);

    if (first_len > 0 && first[0] != '#') {
        /* the list starts with its header; anything else is HAProxy's error text */
        return kn_haproxy_refused("show map", line, err);
    }
    while (*line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        struct kn_haproxy_map_info m;
        if (kn_haproxy_map_line(&m, line, len) == 0) {
            maps = kn_reallocarray(maps, n + 1, sizeof(*maps));
            maps[n++] = m;
        }
        line += len + (end ? 1 : 0);
    }
    if (n > 1) {
        qsort(maps, n, sizeof(*maps), kn_haproxy_map_info_cmp);
    }
    *out = maps;
    *count = n;
    return 0;
}

const struct kn_haproxy_map_info *kn_haproxy_map_list_find(const struct kn_haproxy_map_info *maps,
                                                           size_t count, const char *file)
{
    return count ? bsearch(file, maps, count, sizeof(*maps), kn_haproxy_map_file_cmp) : NULL;
}

void kn_haproxy_map_list_free(struct kn_haproxy_map_info *maps, size_t count)
{
    for (size_t i = 0; maps && i < count; i++) {
        free(maps[i].file);
    }
    free(maps);
}

int kn_haproxy_config_render(char **out, const struct kn_haproxy_cfg *cfg, struct kn_error *err)
{
    int rc;
    struct kn_buf b;

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    if ((rc = kn_haproxy_check_cfg(cfg, err)) < 0) {
        goto out;
    }
    kn_buf_adds(&b, "# Generated by kanaria: edits are lost when kanaria writes it again.\n"
                    "global\n"
                    "    master-worker\n"
                    /* a port another process holds (even with SO_REUSEPORT) fails the start
                     * instead of sharing its connections with a stranger */
                    "    noreuseport\n");
    kn_buf_addf(&b, "    stats socket %s mode 600 level admin expose-fd listeners\n",
                cfg->stats_socket);
    if (cfg->pid_file) {
        kn_buf_addf(&b, "    pidfile %s\n", cfg->pid_file);
    }
    kn_buf_adds(&b, "\n"
                    "defaults\n"
                    "    mode http\n"
                    "    timeout connect 2s\n"
                    "    timeout client 30s\n"
                    "    timeout server 30s\n");
    if (cfg->prometheus_bind) {
        kn_buf_addf(&b,
                    "\nfrontend " KN_HAPROXY_PROMETHEUS_FRONTEND "\n"
                    "    bind %s\n"
                    "    http-request use-service prometheus-exporter if { path /metrics }\n",
                    cfg->prometheus_bind);
    }
    for (size_t a = 0; a < cfg->app_count; a++) {
        const struct kn_haproxy_cfg_app *app = &cfg->apps[a];
        kn_buf_addf(&b,
                    "\nfrontend fe_%s\n"
                    "    bind %s\n",
                    app->name, app->bind);
        if (app->route_map) {
            /* the routes are the map's entries, changed at run time (add/clear map) */
            kn_buf_addf(&b,
                        "    acl kn_route req.hdrs,map_reg(%s) -m found\n"
                        "    use_backend %s" KN_HAPROXY_ROUTE_SUFFIX " if kn_route\n",
                        app->route_map, app->name);
        }
        kn_buf_addf(&b,
                    "    default_backend %s\n"
                    "\nbackend %s\n"
                    "    balance roundrobin\n",
                    app->name, app->name);
        for (size_t s = 0; s < app->server_count; s++) {
            const struct kn_haproxy_cfg_server *srv = &app->servers[s];
            kn_buf_addf(&b, "    server %s %s:%d weight %d%s\n", srv->name, srv->addr, srv->port,
                        srv->weight, srv->maint ? " disabled" : "");
        }
        if (app->route_map) {
            kn_buf_addf(&b, "\nbackend %s" KN_HAPROXY_ROUTE_SUFFIX "\n    balance roundrobin\n",
                        app->name);
            for (size_t s = 0; s < app->server_count; s++) {
                const struct kn_haproxy_cfg_server *srv = &app->servers[s];
                if (srv->canary) {
                    kn_buf_addf(&b, "    server %s %s:%d weight 1%s\n", srv->name, srv->addr,
                                srv->port, srv->maint ? " disabled" : "");
                }
            }
        }
    }
    *out = kn_buf_detach(&b, NULL);
out:
    kn_buf_release(&b);
    return rc;
}

/* ---- addresses a managed HAProxy must own --------------------------------------------------- */

int kn_haproxy_bind_probe(const char *addr, struct kn_error *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char host[256], service[8];
    int port, rc = 0, grc, one = 1;

    if (!addr || kn_hostport_parse(addr, host, sizeof(host), &port) < 0) {
        return kn_error_set(err, KN_EINVAL, NULL, "'%s' is not HOST:PORT", addr ? addr : "");
    }
    snprintf(service, sizeof(service), "%d", port);
    grc = getaddrinfo(host[0] && strcmp(host, "*") != 0 ? host : NULL, service, &hints, &res);
    if (grc != 0) {
        return kn_error_set(err, KN_EINVAL, NULL, "cannot resolve '%s': %s", addr,
                            gai_strerror(grc));
    }
    for (const struct addrinfo *ai = res; ai && rc == 0; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            continue; /* an address family this host has not */
        }
        /* SO_REUSEADDR as HAProxy sets it (connections in TIME_WAIT do not count), and no
         * SO_REUSEPORT: a listener that set it must not let this bind through */
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6) {
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            rc = errno == EADDRINUSE
                     ? kn_error_set(err, KN_EEXISTS, NULL,
                                    "%s is in use by another process", addr)
                     : kn_error_set(err, KN_EIO, NULL, "cannot listen on %s: %s", addr,
                                    strerror(errno));
        }
        close(fd);
    }
    freeaddrinfo(res);
    return rc;
}

int kn_haproxy_socket_claim(const char *path, struct kn_error *err)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct stat st;
    int fd = -1, rc = 0;

    if (!path || strlen(path) > KN_SUN_PATH_MAX) {
        return kn_error_set(err, KN_EINVAL, NULL, "bad haproxy stats socket path");
    }
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT) {
            goto out;
        }
        rc = kn_error_set(err, KN_EIO, NULL, "cannot read haproxy stats socket %s: %s", path,
                          strerror(errno));
        goto out;
    }
    if (!S_ISSOCK(st.st_mode)) {
        rc = kn_error_set(err, KN_EEXISTS, NULL,
                          "haproxy stats socket %s exists and is not a socket", path);
        goto out;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "socket: %s", strerror(errno));
        goto out;
    }
    /* a Unix connect answers at once: accepted or queued (EAGAIN: a full queue) is a live
     * listener; refused is a socket file its process left behind */
    if (connect(fd, (const struct sockaddr *)&sun, sizeof(sun)) == 0 || errno == EAGAIN ||
        errno == EINPROGRESS) {
        rc = kn_error_set(err, KN_EEXISTS, NULL,
                          "haproxy stats socket %s is in use by another process", path);
        goto out;
    }
    if (errno != ECONNREFUSED) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot check haproxy stats socket %s: %s", path,
                          strerror(errno));
        goto out;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot remove the stale socket %s: %s", path,
                          strerror(errno));
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

/* ---- runtime client ------------------------------------------------------------------------ */

/* One command in flight. Freed when both handles are closed. */
struct kn_haproxy_req {
    uv_pipe_t pipe;
    uv_timer_t timer;
    uv_connect_t connect;
    uv_write_t write;
    char *socket_path;
    char *command; /* with its "\n" */
    unsigned timeout_ms;
    struct kn_buf reply;
    char chunk[16384];
    kn_haproxy_cb cb;
    void *data;
    bool done;   /* cb has run; later libuv callbacks only clean up */
    int closing; /* handles whose close callback is still to come */
};

static void kn_haproxy_req_closed(uv_handle_t *h)
{
    struct kn_haproxy_req *r = h->data;

    if (--r->closing == 0) {
        kn_buf_release(&r->reply);
        free(r->socket_path);
        free(r->command);
        free(r);
    }
}

/* Report once, then close both handles (pending requests are cancelled into the void). */
static void kn_haproxy_req_finish(struct kn_haproxy_req *r, int status, const char *text)
{
    if (!r->done) {
        r->done = true;
        r->cb(status, text, r->data);
        r->closing = 2;
        uv_close((uv_handle_t *)&r->timer, kn_haproxy_req_closed);
        uv_close((uv_handle_t *)&r->pipe, kn_haproxy_req_closed);
    }
}

static void kn_haproxy_req_fail(struct kn_haproxy_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void kn_haproxy_req_fail(struct kn_haproxy_req *r, int status, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = kn_vasprintf(fmt, ap);
    va_end(ap);
    kn_haproxy_req_finish(r, status, msg);
    free(msg);
}

static void kn_haproxy_req_timeout(uv_timer_t *t)
{
    struct kn_haproxy_req *r = t->data;

    kn_haproxy_req_fail(r, KN_EIO, "haproxy did not answer within %u ms", r->timeout_ms);
}

static void kn_haproxy_req_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct kn_haproxy_req *r = h->data;

    (void)suggested;
    *buf = uv_buf_init(r->chunk, sizeof(r->chunk));
}

static void kn_haproxy_req_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct kn_haproxy_req *r = s->data;
    struct kn_error err;

    if (r->done || nread == 0) {
        goto out;
    }
    if (nread > 0) {
        if (kn_buf_add(&r->reply, buf->base, (size_t)nread) < 0) {
            kn_haproxy_req_fail(r, KN_ETOOBIG, "haproxy's reply is larger than %u bytes",
                                KN_HAPROXY_REPLY_MAX);
        }
        goto out;
    }
    if (nread != UV_EOF) {
        /* Reset before any answer: HAProxy is stopping (a dying process still held the
         * listening socket), which callers treat like no HAProxy at all. */
        kn_haproxy_req_fail(r, KN_EIO, "%s %s: %s",
                            r->reply.len ? "reading from haproxy at"
                                         : "haproxy is not reachable at",
                            r->socket_path, uv_strerror((int)nread));
        goto out;
    }
    /* HAProxy closed the connection: the reply is complete. Classify it against the command
     * without its newline, which also goes into the message. */
    r->command[strlen(r->command) - 1] = '\0';
    kn_buf_add(&r->reply, "", 0); /* NUL-terminated even when empty */
    kn_error_clear(&err);
    if (kn_haproxy_reply_check(r->command, r->reply.data, &err) < 0) {
        kn_haproxy_req_finish(r, err.code, err.msg);
    } else {
        kn_haproxy_req_finish(r, 0, r->reply.data);
    }
out:
    return;
}

static void kn_haproxy_req_written(uv_write_t *w, int status)
{
    struct kn_haproxy_req *r = w->data;

    if (!r->done && status < 0) {
        kn_haproxy_req_fail(r, KN_EIO, "haproxy is not reachable at %s: %s", r->socket_path,
                            uv_strerror(status));
    }
}

static void kn_haproxy_req_connected(uv_connect_t *c, int status)
{
    struct kn_haproxy_req *r = c->data;
    uv_buf_t buf;
    int rc;

    if (r->done) {
        goto out;
    }
    if (status < 0) {
        kn_haproxy_req_fail(r, KN_EIO, "haproxy is not reachable at %s: %s", r->socket_path,
                            uv_strerror(status));
        goto out;
    }
    buf = uv_buf_init(r->command, (unsigned)strlen(r->command));
    if ((rc = uv_write(&r->write, (uv_stream_t *)&r->pipe, &buf, 1, kn_haproxy_req_written)) < 0 ||
        (rc = uv_read_start((uv_stream_t *)&r->pipe, kn_haproxy_req_alloc, kn_haproxy_req_read)) <
            0) {
        kn_haproxy_req_fail(r, KN_EIO, "cannot talk to haproxy at %s: %s", r->socket_path,
                            uv_strerror(rc));
    }
out:
    return;
}

int kn_haproxy_command(uv_loop_t *loop, const char *socket_path, const char *command,
                       unsigned timeout_ms, kn_haproxy_cb cb, void *data)
{
    int rc = 0;
    struct kn_haproxy_req *r;

    if (!loop || !cb || !socket_path || !*socket_path || !command || !*command ||
        strpbrk(command, "\r\n;") || strlen(socket_path) > KN_SUN_PATH_MAX) {
        rc = KN_EINVAL;
        goto out;
    }
    r = kn_calloc(1, sizeof(*r));
    r->socket_path = kn_strdup(socket_path);
    r->command = kn_asprintf("%s\n", command);
    r->timeout_ms = timeout_ms ? timeout_ms : KN_HAPROXY_COMMAND_TIMEOUT_MS;
    r->cb = cb;
    r->data = data;
    kn_buf_init(&r->reply, KN_HAPROXY_REPLY_MAX);
    /* Neither init can fail on Unix: they only fill the structures. */
    uv_timer_init(loop, &r->timer);
    uv_pipe_init(loop, &r->pipe, 0);
    r->timer.data = r;
    r->pipe.data = r;
    r->connect.data = r;
    r->write.data = r;
    uv_timer_start(&r->timer, kn_haproxy_req_timeout, r->timeout_ms, 0);
    /* Errors (no socket, refused) come to the callback on the next loop iteration. */
    uv_pipe_connect(&r->connect, &r->pipe, r->socket_path, kn_haproxy_req_connected);
out:
    return rc;
}

/* ---- config check -------------------------------------------------------------------------- */

/* One `haproxy -c` run. The callback runs from the last close callback, once the process has
 * been reaped and its output read, so nothing is left behind when it runs. */
struct kn_haproxy_check {
    uv_process_t process;
    uv_pipe_t output; /* the child's stderr */
    uv_timer_t timer;
    char *binary;
    char *cfg_path;
    unsigned timeout_ms;
    struct kn_buf text;
    char chunk[4096];
    int spawn_error; /* uv_spawn's error, 0 when it ran */
    bool exited;
    bool eof;
    bool timed_out;
    int64_t exit_status;
    int term_signal;
    int closing;
    kn_haproxy_cb cb;
    void *data;
};

static void kn_haproxy_check_report(struct kn_haproxy_check *c)
{
    int status = 0;
    char *msg = NULL;
    size_t len = c->text.len;
    const char *text = c->text.data ? c->text.data : "";

    while (len > 0 && kn_haproxy_space(text[len - 1])) {
        len--;
    }
    if (c->spawn_error) {
        status = c->spawn_error == UV_ENOENT ? KN_ENOENT : KN_EIO;
        msg = kn_asprintf("cannot run %s: %s", c->binary, uv_strerror(c->spawn_error));
    } else if (c->timed_out) {
        status = KN_EIO;
        msg = kn_asprintf("haproxy -c did not finish within %u ms", c->timeout_ms);
    } else if (c->exit_status != 0 || c->term_signal != 0) {
        status = KN_ESCHEMA;
        msg = kn_asprintf("haproxy rejected %s: %.*s", c->cfg_path, (int)len,
                          len              ? text
                          : c->term_signal ? "killed by a signal"
                                           : "no message");
    } else {
        msg = kn_strndup(text, len);
    }
    c->cb(status, msg, c->data);
    free(msg);
}

static void kn_haproxy_check_closed(uv_handle_t *h)
{
    struct kn_haproxy_check *c = h->data;

    if (--c->closing == 0) {
        kn_haproxy_check_report(c);
        kn_buf_release(&c->text);
        free(c->binary);
        free(c->cfg_path);
        free(c);
    }
}

static void kn_haproxy_check_close(struct kn_haproxy_check *c)
{
    c->closing = 3;
    uv_close((uv_handle_t *)&c->timer, kn_haproxy_check_closed);
    uv_close((uv_handle_t *)&c->output, kn_haproxy_check_closed);
    uv_close((uv_handle_t *)&c->process, kn_haproxy_check_closed);
}

/* Done once the child is reaped and its output has ended (or was given up on). */
static void kn_haproxy_check_maybe_done(struct kn_haproxy_check *c)
{
    if (c->exited && c->eof && !c->closing) {
        kn_haproxy_check_close(c);
    }
}

static void kn_haproxy_check_exited(uv_process_t *p, int64_t exit_status, int term_signal)
{
    struct kn_haproxy_check *c = p->data;

    c->exited = true;
    c->exit_status = exit_status;
    c->term_signal = term_signal;
    kn_haproxy_check_maybe_done(c);
}

static void kn_haproxy_check_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct kn_haproxy_check *c = h->data;

    (void)suggested;
    *buf = uv_buf_init(c->chunk, sizeof(c->chunk));
}

static void kn_haproxy_check_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct kn_haproxy_check *c = s->data;

    if (nread > 0) {
        /* Past the maximum the rest is dropped: the start says what is wrong. */
        kn_buf_add(&c->text, buf->base, (size_t)nread);
    } else if (nread < 0) {
        uv_read_stop(s);
        c->eof = true;
        kn_haproxy_check_maybe_done(c);
    }
}

static void kn_haproxy_check_timeout(uv_timer_t *t)
{
    struct kn_haproxy_check *c = t->data;

    if (c->spawn_error) {
        kn_haproxy_check_close(c);
    } else {
        /* Kill it and wait for its exit, so that it is reaped; stop waiting for the end of its
         * output, which something it started could hold open. */
        c->timed_out = true;
        uv_read_stop((uv_stream_t *)&c->output);
        c->eof = true;
        if (!c->exited) {
            uv_process_kill(&c->process, SIGKILL);
        }
        kn_haproxy_check_maybe_done(c);
    }
}

int kn_haproxy_check_config(uv_loop_t *loop, const char *binary, const char *cfg_path,
                            unsigned timeout_ms, kn_haproxy_cb cb, void *data)
{
    int rc = 0;
    struct kn_haproxy_check *c;
    uv_process_options_t opts;
    uv_stdio_container_t stdio[3];
    char *args[5];

    if (!loop || !cfg_path || !cb) {
        rc = KN_EINVAL;
        goto out;
    }
    c = kn_calloc(1, sizeof(*c));
    c->binary = kn_strdup(binary ? binary : KN_HAPROXY_BINARY);
    c->cfg_path = kn_strdup(cfg_path);
    c->timeout_ms = timeout_ms ? timeout_ms : KN_HAPROXY_CHECK_TIMEOUT_MS;
    c->cb = cb;
    c->data = data;
    kn_buf_init(&c->text, KN_HAPROXY_CHECK_OUTPUT_MAX);
    uv_timer_init(loop, &c->timer);
    uv_pipe_init(loop, &c->output, 0);
    c->timer.data = c;
    c->output.data = c;
    c->process.data = c;

    args[0] = c->binary;
    args[1] = kn_haproxy_arg_check;
    args[2] = kn_haproxy_arg_file;
    args[3] = c->cfg_path;
    args[4] = NULL;
    memset(&opts, 0, sizeof(opts));
    memset(stdio, 0, sizeof(stdio));
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_IGNORE; /* "Configuration file is valid" */
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&c->output;
    opts.file = c->binary;
    opts.args = args;
    opts.exit_cb = kn_haproxy_check_exited;
    opts.stdio_count = 3;
    opts.stdio = stdio;

    kn_fd_cloexec_all();
    c->spawn_error = uv_spawn(loop, &c->process, &opts);
    if (c->spawn_error) {
        /* Report through the callback, from the loop, like any other failure of the check. */
        uv_timer_start(&c->timer, kn_haproxy_check_timeout, 0, 0);
        goto out;
    }
    if (uv_read_start((uv_stream_t *)&c->output, kn_haproxy_check_alloc, kn_haproxy_check_read) <
        0) {
        c->eof = true; /* no output then; the exit alone decides */
    }
    uv_timer_start(&c->timer, kn_haproxy_check_timeout, c->timeout_ms, 0);
out:
    return rc;
}

/* ---- managed process ----------------------------------------------------------------------- */

struct kn_haproxy_proc {
    uv_process_t process;
    kn_haproxy_exit_cb on_exit;
    void *data;
    bool exited;
};

static void kn_haproxy_proc_closed(uv_handle_t *h)
{
    free(h->data);
}

static void kn_haproxy_proc_on_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
    struct kn_haproxy_proc *proc = p->data;

    proc->exited = true;
    if (proc->on_exit) {
        proc->on_exit(proc, exit_status, term_signal, proc->data);
    }
}

int kn_haproxy_start(struct kn_haproxy_proc **out, uv_loop_t *loop,
                     const struct kn_haproxy_launch *launch, struct kn_error *err)
{
    int rc = 0;
    int log_fd = -1;
    struct kn_haproxy_proc *proc = NULL;
    uv_process_options_t opts;
    uv_stdio_container_t stdio[3];
    const char *binary = launch->binary ? launch->binary : KN_HAPROXY_BINARY;
    char *args[7] = {NULL};
    int uerr;

    if (!launch->cfg_path || !launch->pid_path) {
        rc = kn_error_set(err, KN_EINVAL, NULL, "haproxy needs a config file and a pid file");
        goto out;
    }
    if (launch->log_path) {
        log_fd = open(launch->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (log_fd < 0) {
            rc = kn_error_set(err, errno == ENOENT ? KN_ENOENT : KN_EIO, NULL,
                              "cannot open haproxy log %s: %s", launch->log_path, strerror(errno));
            goto out;
        }
    }
    args[0] = kn_strdup(binary);
    args[1] = kn_haproxy_arg_master;
    args[2] = kn_haproxy_arg_file;
    args[3] = kn_strdup(launch->cfg_path);
    args[4] = kn_haproxy_arg_pid;
    args[5] = kn_strdup(launch->pid_path);
    args[6] = NULL;
    memset(&opts, 0, sizeof(opts));
    memset(stdio, 0, sizeof(stdio));
    stdio[0].flags = UV_IGNORE;
    for (int i = 1; i < 3; i++) {
        stdio[i].flags = log_fd >= 0 ? UV_INHERIT_FD : UV_IGNORE;
        stdio[i].data.fd = log_fd;
    }
    opts.file = args[0];
    opts.args = args;
    opts.exit_cb = kn_haproxy_proc_on_exit;
    opts.stdio_count = 3;
    opts.stdio = stdio;
    /* Its own session: no signal for kanaria's terminal or process group reaches it. */
    opts.flags = UV_PROCESS_DETACHED;

    proc = kn_calloc(1, sizeof(*proc));
    proc->process.data = proc;
    proc->on_exit = launch->on_exit;
    proc->data = launch->data;
    kn_fd_cloexec_all(); /* HAProxy outlives kanaria: it must hold none of its sockets */
    if ((uerr = uv_spawn(loop, &proc->process, &opts)) < 0) {
        rc = kn_error_set(err, uerr == UV_ENOENT ? KN_ENOENT : KN_EIO, NULL, "cannot run %s: %s",
                          binary, uv_strerror(uerr));
        /* uv_spawn initialised the handle even though it failed; it is freed once closed. */
        uv_close((uv_handle_t *)&proc->process, kn_haproxy_proc_closed);
        goto out;
    }
    /* The handle stays so that the loop reaps HAProxy when it exits, but must not keep the loop
     * running: HAProxy is meant to outlive kanaria. */
    uv_unref((uv_handle_t *)&proc->process);
    *out = proc;
out:
    if (log_fd >= 0) {
        close(log_fd);
    }
    free(args[0]);
    free(args[3]);
    free(args[5]);
    return rc;
}

int kn_haproxy_proc_pid(const struct kn_haproxy_proc *proc)
{
    return proc->process.pid;
}

bool kn_haproxy_proc_exited(const struct kn_haproxy_proc *proc)
{
    return proc->exited;
}

void kn_haproxy_proc_free(struct kn_haproxy_proc *proc)
{
    if (proc) {
        proc->on_exit = NULL;
        uv_close((uv_handle_t *)&proc->process, kn_haproxy_proc_closed);
    }
}

/* The pid in the file, 0 when there is no file. Never 0, 1 or negative from the file: kill()
 * would take those for process groups or init. */
static int kn_haproxy_read_pid(const char *pid_path, pid_t *out, struct kn_error *err)
{
    int rc = 0;
    int fd;
    char buf[32];
    ssize_t n;
    long pid = 0;
    char *p = buf;

    *out = 0;
    if ((fd = open(pid_path, O_RDONLY | O_CLOEXEC)) < 0) {
        if (errno != ENOENT) {
            rc = kn_error_set(err, KN_EIO, NULL, "cannot read haproxy pid file %s: %s", pid_path,
                              strerror(errno));
        }
        goto out;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot read haproxy pid file %s: %s", pid_path,
                          strerror(errno));
        goto out;
    }
    buf[n] = '\0';
    while (*p >= '0' && *p <= '9' && pid < 1000000000L) {
        pid = pid * 10 + (*p++ - '0');
    }
    while (kn_haproxy_space(*p)) {
        p++;
    }
    if (pid <= 1 || pid >= 1000000000L || *p) {
        rc = kn_error_set(err, KN_EPARSE, NULL, "haproxy pid file %s holds no pid", pid_path);
        goto out;
    }
    *out = (pid_t)pid;
out:
    return rc;
}

/* Is pid a live HAProxy? kill(pid, 0) says the process exists; /proc/PID/stat, when there is a
 * /proc, rules out zombies (a dead master not reaped yet) and processes that are not HAProxy. */
static bool kn_haproxy_pid_alive(pid_t pid)
{
    bool alive = kill(pid, 0) == 0 || errno == EPERM;
    char path[64];
    char line[512];
    size_t n;
    FILE *f;
    char *open_paren;
    char *close_paren;

    if (!alive) {
        goto out;
    }
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if (!(f = fopen(path, "r"))) {
        goto out; /* no /proc: trust kill() */
    }
    n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    open_paren = strchr(line, '(');
    close_paren = strrchr(line, ')');
    if (!open_paren || !close_paren || close_paren < open_paren) {
        goto out;
    }
    *close_paren = '\0';
    alive = kn_starts_with(open_paren + 1, "haproxy") && close_paren[1] == ' ' &&
            close_paren[2] != 'Z' && close_paren[2] != 'X';
out:
    return alive;
}

int kn_haproxy_running(const char *pid_path, struct kn_error *err)
{
    int rc;
    pid_t pid;

    if ((rc = kn_haproxy_read_pid(pid_path, &pid, err)) < 0) {
        goto out;
    }
    rc = pid > 0 && kn_haproxy_pid_alive(pid);
out:
    return rc;
}

/* Send sig to the running master; when none runs, KN_ENOENT, or 0 if missing_ok. */
static int kn_haproxy_signal(const char *pid_path, int sig, const char *why, bool missing_ok,
                             struct kn_error *err)
{
    int rc;
    pid_t pid;

    if ((rc = kn_haproxy_read_pid(pid_path, &pid, err)) < 0) {
        goto out;
    }
    if (pid == 0 || !kn_haproxy_pid_alive(pid)) {
        if (missing_ok) {
            goto out;
        }
        rc = kn_error_set(err, KN_ENOENT, NULL, "haproxy is not running (pid file %s)", pid_path);
        goto out;
    }
    if (kill(pid, sig) < 0) {
        rc = kn_error_set(err, KN_EIO, NULL, "cannot %s haproxy (pid %ld): %s", why, (long)pid,
                          strerror(errno));
    }
out:
    return rc;
}

int kn_haproxy_reload(const char *pid_path, struct kn_error *err)
{
    return kn_haproxy_signal(pid_path, SIGUSR2, "reload", false, err);
}

int kn_haproxy_stop(const char *pid_path, struct kn_error *err)
{
    return kn_haproxy_signal(pid_path, SIGTERM, "stop", true, err);
}
