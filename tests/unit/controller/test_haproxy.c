/*
 * Unit tests for controller/platforms/local/haproxy.c: the pure parts (runtime-API commands and
 * the refusal of injected input, reply classification, `show servers state` parsing of a reply
 * captured from HAProxy 2.6, the weight table, the generated configuration), then a real
 * HAProxy started on free loopback ports and driven through its admin socket.
 */
/* SO_REUSEPORT (Linux) is declared only with _DEFAULT_SOURCE besides _POSIX_C_SOURCE. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif

#include "testutil.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "kanaria/alloc.h"
#include "kanaria/error.h"
#include "platforms/local/haproxy.h"

/* The reply of `show servers state app` from HAProxy 2.6.12: primary-1 in service (weight 50),
 * canary-1 `disabled` in the config (admin 5), c2 added at runtime and set to drain (admin 8). */
static const char kn_state_reply[] =
    "1\n"
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
    "srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health "
    "srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord "
    "srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"
    "4 app 1 primary-1 127.0.0.1 2 0 50 50 10 1 0 2 0 0 0 0 - 9001 - 0 0 - - 0\n"
    "4 app 2 canary-1 127.0.0.1 0 5 10 10 10 1 0 0 8 0 0 0 - 9002 - 0 0 - - 0\n"
    "4 app 3 c2 127.0.0.1 2 8 7 7 0 1 0 0 0 0 0 0 - 9005 - 0 0 - - 0\n"
    "\n";

/* ---- commands ------------------------------------------------------------------------------ */

static void test_commands(void **state)
{
    char *cmd = NULL;
    struct kn_error err;

    (void)state;
    kn_error_clear(&err);
    assert_int_equal(
        kn_haproxy_cmd_add_server(&cmd, "app", "primary-1", "127.0.0.1", 8081, 100, &err), 0);
    assert_string_equal(cmd, "add server app/primary-1 127.0.0.1:8081 weight 100");
    free(cmd);
    assert_int_equal(kn_haproxy_cmd_enable_server(&cmd, "app", "canary-2", &err), 0);
    assert_string_equal(cmd, "enable server app/canary-2");
    free(cmd);
    assert_int_equal(kn_haproxy_cmd_set_weight(&cmd, "my.app_2", "baseline-1", 0, &err), 0);
    assert_string_equal(cmd, "set weight my.app_2/baseline-1 0");
    free(cmd);
    assert_int_equal(kn_haproxy_cmd_set_state(&cmd, "app", "primary-1", KN_HAPROXY_READY, &err), 0);
    assert_string_equal(cmd, "set server app/primary-1 state ready");
    free(cmd);
    assert_int_equal(kn_haproxy_cmd_set_state(&cmd, "app", "primary-1", KN_HAPROXY_DRAIN, &err), 0);
    assert_string_equal(cmd, "set server app/primary-1 state drain");
    free(cmd);
    assert_int_equal(kn_haproxy_cmd_set_state(&cmd, "app", "primary-1", KN_HAPROXY_MAINT, &err), 0);
    assert_string_equal(cmd, "set server app/primary-1 state maint");
    free(cmd);
    assert_int_equal(kn_haproxy_cmd_del_server(&cmd, "app", "primary-1", &err), 0);
    assert_string_equal(cmd, "del server app/primary-1");
    free(cmd);
    assert_int_equal(kn_haproxy_cmd_show_servers_state(&cmd, "app", &err), 0);
    assert_string_equal(cmd, "show servers state app");
    free(cmd);
    assert_int_equal(kn_haproxy_cmd_show_servers_state(&cmd, NULL, &err), 0);
    assert_string_equal(cmd, "show servers state");
    free(cmd);
    assert_int_equal(kn_haproxy_cmd_add_server(&cmd, "app", "c-1", "::1", 65535, 256, &err), 0);
    assert_string_equal(cmd, "add server app/c-1 ::1:65535 weight 256");
    free(cmd);
    assert_int_equal(err.code, 0); /* success leaves err alone */
}

/* Input that would add a command (newline, ';'), a field (space) or another target ('/') is
 * refused before any text is built. */
static void test_commands_refuse_injection(void **state)
{
    static const char *const bad_names[] = {
        "",
        "app\nshutdown sessions",
        "app;del server app/x",
        "app server",
        "app/x",
        "äpp",
        "app\r",
        "a$b",
        "#comment",
    };
    char long_name[KN_HAPROXY_NAME_MAX + 2];
    char *cmd = NULL;
    struct kn_error err;

    (void)state;
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        kn_error_clear(&err);
        assert_int_equal(kn_haproxy_cmd_set_weight(&cmd, bad_names[i], "s", 1, &err), KN_EINVAL);
        assert_int_equal(kn_haproxy_cmd_set_weight(&cmd, "app", bad_names[i], 1, &err), KN_EINVAL);
        assert_int_equal(kn_haproxy_cmd_show_servers_state(&cmd, bad_names[i], &err), KN_EINVAL);
        assert_int_equal(err.code, KN_EINVAL);
        assert_null(strchr(err.msg, '\n'));
        assert_false(kn_haproxy_name_valid(bad_names[i]));
    }
    assert_null(cmd);
    assert_int_equal(kn_haproxy_cmd_enable_server(&cmd, "app", "x\ny", &err), KN_EINVAL);
    assert_string_equal(err.msg, "haproxy server name has byte 0x0a at offset 1: only letters, "
                                 "digits, '.', '_' and '-' are allowed");
    assert_int_equal(kn_haproxy_cmd_del_server(&cmd, "a;b", "x", &err), KN_EINVAL);
    assert_string_equal(err.msg, "haproxy backend name has ';' at offset 1: only letters, "
                                 "digits, '.', '_' and '-' are allowed");
    assert_int_equal(kn_haproxy_cmd_del_server(&cmd, NULL, "x", &err), KN_EINVAL);
    assert_string_equal(err.msg, "haproxy backend name is empty");

    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    assert_int_equal(kn_haproxy_cmd_enable_server(&cmd, "app", long_name, &err), KN_EINVAL);
    long_name[KN_HAPROXY_NAME_MAX] = '\0';
    assert_true(kn_haproxy_name_valid(long_name));

    assert_int_equal(kn_haproxy_cmd_add_server(&cmd, "app", "s", "127.0.0.1;x", 80, 1, &err),
                     KN_EINVAL);
    assert_int_equal(kn_haproxy_cmd_add_server(&cmd, "app", "s", "127.0.0.1\n", 80, 1, &err),
                     KN_EINVAL);
    assert_int_equal(kn_haproxy_cmd_add_server(&cmd, "app", "s", "", 80, 1, &err), KN_EINVAL);
    assert_int_equal(kn_haproxy_cmd_add_server(&cmd, "app", "s", "127.0.0.1", 0, 1, &err),
                     KN_EINVAL);
    assert_int_equal(kn_haproxy_cmd_add_server(&cmd, "app", "s", "127.0.0.1", 65536, 1, &err),
                     KN_EINVAL);
    assert_int_equal(kn_haproxy_cmd_add_server(&cmd, "app", "s", "127.0.0.1", 80, 257, &err),
                     KN_EINVAL);
    assert_string_equal(err.msg, "haproxy server weight must be between 0 and 256, got 257");
    assert_int_equal(kn_haproxy_cmd_set_weight(&cmd, "app", "s", -1, &err), KN_EINVAL);
    assert_int_equal(kn_haproxy_cmd_set_state(&cmd, "app", "s", (enum kn_haproxy_admin)7, &err),
                     KN_EINVAL);
    assert_null(cmd);
}

/* ---- replies ------------------------------------------------------------------------------- */

static void test_reply_check(void **state)
{
    struct kn_error err;

    (void)state;
    kn_error_clear(&err);
    /* Successes, as HAProxy 2.6 words them. */
    assert_int_equal(kn_haproxy_reply_check("add server app/p-1 127.0.0.1:1 weight 1",
                                            "New server registered.\n\n", &err),
                     0);
    assert_int_equal(kn_haproxy_reply_check("enable server app/p-1", "\n", &err), 0);
    assert_int_equal(kn_haproxy_reply_check("set weight app/p-1 3", "\n", &err), 0);
    assert_int_equal(kn_haproxy_reply_check("set server app/p-1 state maint", "", &err), 0);
    assert_int_equal(kn_haproxy_reply_check("del server app/p-1", "Server deleted.\n", &err), 0);
    assert_int_equal(kn_haproxy_reply_check("show servers state app", kn_state_reply, &err), 0);
    assert_int_equal(kn_haproxy_reply_check("show info", "Name: HAProxy\nVersion: 2.6\n", &err), 0);
    assert_int_equal(err.code, 0);

    /* Errors, with HAProxy's own words in the message. */
    assert_int_equal(kn_haproxy_reply_check("set weight app/nope 3", "No such server.\n\n", &err),
                     KN_EIO);
    assert_string_equal(err.msg, "haproxy refused 'set weight app/nope 3': No such server.");
    assert_int_equal(
        kn_haproxy_reply_check("set weight app 3", "Require 'backend/server'.\n\n", &err), KN_EIO);
    assert_string_equal(err.msg, "haproxy refused 'set weight app 3': Require 'backend/server'.");
    assert_int_equal(kn_haproxy_reply_check("add server app/p-1 127.0.0.1:1 weight 1",
                                            "Already exists a server with the same name in "
                                            "backend.\n\n",
                                            &err),
                     KN_EIO);
    assert_non_null(strstr(err.msg, "Already exists a server with the same name"));
    assert_int_equal(kn_haproxy_reply_check("del server app/p-1",
                                            "Only servers in maintenance mode can be deleted.\n",
                                            &err),
                     KN_EIO);
    assert_non_null(strstr(err.msg, "Only servers in maintenance mode can be deleted."));
    assert_int_equal(
        kn_haproxy_reply_check("show servers state nope", "Can't find backend.\n\n", &err), KN_EIO);
    assert_string_equal(err.msg, "haproxy refused 'show servers state nope': Can't find backend.");
    assert_int_equal(kn_haproxy_reply_check("set weight app/p-1 300",
                                            "Absolute weight can only "
                                            "be between 0 and 256 inclusive.\n\n",
                                            &err),
                     KN_EIO);
    assert_int_equal(kn_haproxy_reply_check("bogus cmd",
                                            "Unknown command, but maybe one of the "
                                            "following ones is a better match:\n  add acl ...\n",
                                            &err),
                     KN_EIO);
    assert_string_equal(err.msg, "haproxy refused 'bogus cmd': Unknown command, but maybe one of "
                                 "the following ones is a better match:");
    assert_int_equal(kn_haproxy_reply_check("add server app/p-1 127.0.0.1:1 weight 1", "", &err),
                     KN_EIO);
    assert_string_equal(err.msg, "haproxy refused 'add server app/p-1 127.0.0.1:1 weight 1': "
                                 "(empty reply)");
}

static void test_parse_servers_state(void **state)
{
    struct kn_haproxy_server_state *s = NULL;
    size_t n = 0;
    struct kn_error err;

    (void)state;
    kn_error_clear(&err);
    assert_int_equal(kn_haproxy_parse_servers_state(&s, &n, kn_state_reply, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(s[0].backend, "app");
    assert_string_equal(s[0].name, "primary-1");
    assert_string_equal(s[0].addr, "127.0.0.1");
    assert_int_equal(s[0].port, 9001);
    assert_int_equal(s[0].op_state, KN_HAPROXY_OP_RUNNING);
    assert_int_equal(s[0].admin_state, 0);
    assert_int_equal(s[0].admin, KN_HAPROXY_READY);
    assert_int_equal(s[0].weight, 50);
    assert_string_equal(s[1].name, "canary-1");
    assert_int_equal(s[1].port, 9002);
    assert_int_equal(s[1].op_state, KN_HAPROXY_OP_STOPPED);
    assert_int_equal(s[1].admin_state, KN_HAPROXY_ADMF_FMAINT | KN_HAPROXY_ADMF_CMAINT);
    assert_int_equal(s[1].admin, KN_HAPROXY_MAINT);
    assert_int_equal(s[1].weight, 10);
    assert_string_equal(s[2].name, "c2");
    assert_int_equal(s[2].admin_state, KN_HAPROXY_ADMF_FDRAIN);
    assert_int_equal(s[2].admin, KN_HAPROXY_DRAIN);
    assert_int_equal(s[2].weight, 7);
    kn_haproxy_servers_state_free(s, n);
    kn_haproxy_servers_state_free(NULL, 0);

    /* A backend without servers: the two header lines only. */
    s = (void *)&err;
    assert_int_equal(kn_haproxy_parse_servers_state(&s, &n,
                                                    "1\n# be_id be_name srv_id srv_name "
                                                    "srv_addr srv_op_state srv_admin_state "
                                                    "srv_uweight srv_port\n\n",
                                                    &err),
                     0);
    assert_null(s);
    assert_int_equal(n, 0);

    /* Columns are found by name, so a reordered or extended header still parses. */
    assert_int_equal(kn_haproxy_parse_servers_state(&s, &n,
                                                    "1\n# srv_port x srv_uweight "
                                                    "srv_admin_state srv_op_state srv_addr "
                                                    "srv_name\n8080 y 12 1 0 ::1 canary-1\n",
                                                    &err),
                     0);
    assert_int_equal(n, 1);
    assert_string_equal(s[0].backend, ""); /* no be_name column */
    assert_string_equal(s[0].name, "canary-1");
    assert_string_equal(s[0].addr, "::1");
    assert_int_equal(s[0].port, 8080);
    assert_int_equal(s[0].weight, 12);
    assert_int_equal(s[0].admin, KN_HAPROXY_MAINT);
    kn_haproxy_servers_state_free(s, n);

    /* HAProxy's error text, and malformed dumps. */
    s = NULL;
    n = 42;
    assert_int_equal(kn_haproxy_parse_servers_state(&s, &n, "Can't find backend.\n\n", &err),
                     KN_EIO);
    assert_non_null(strstr(err.msg, "Can't find backend."));
    assert_int_equal(kn_haproxy_parse_servers_state(&s, &n, "2\n# srv_name\n", &err), KN_EPARSE);
    assert_string_equal(err.msg, "haproxy server state format version 2 is not supported "
                                 "(kanaria reads version 1)");
    assert_int_equal(kn_haproxy_parse_servers_state(&s, &n, "1\n", &err), KN_EPARSE);
    assert_int_equal(kn_haproxy_parse_servers_state(&s, &n, "1\nbe_id srv_name\n", &err),
                     KN_EPARSE);
    assert_int_equal(kn_haproxy_parse_servers_state(&s, &n, "1\n# srv_name srv_addr\n", &err),
                     KN_EPARSE);
    assert_string_equal(err.msg, "haproxy server state line 2: no column 'srv_op_state'");
    assert_int_equal(kn_haproxy_parse_servers_state(
                         &s, &n,
                         "1\n# srv_name srv_addr srv_op_state srv_admin_state "
                         "srv_uweight srv_port\na 1.2.3.4 2 0 50 9001\nb 1.2.3.4 2 0 x 1\n",
                         &err),
                     KN_EPARSE);
    assert_string_equal(err.msg, "haproxy server state line 4: srv_uweight is not a number in "
                                 "range");
    assert_int_equal(
        kn_haproxy_parse_servers_state(&s, &n,
                                       "1\n# srv_name srv_addr srv_op_state srv_admin_state "
                                       "srv_uweight srv_port\na 1.2.3.4 2 0\n",
                                       &err),
        KN_EPARSE);
    assert_int_equal(
        kn_haproxy_parse_servers_state(&s, &n,
                                       "1\n# srv_name srv_addr srv_op_state srv_admin_state "
                                       "srv_uweight srv_port\na 1.2.3.4 2 0 50 70000\n",
                                       &err),
        KN_EPARSE);
    assert_null(s);
    assert_int_equal(n, 42);
}

/* The dump of every backend (HAProxy 2.6.12, backends in be_id order), read once and handed
 * out per backend: each gets its own rows in HAProxy's order, a route backend ("web:canary")
 * is not its app's, and a backend the dump has no row of gets none. */
static void test_servers_state_of_all_backends(void **state)
{
    static const char reply[] =
        "1\n"
        "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
        "srv_iweight srv_time_since_last_change srv_check_status srv_check_result "
        "srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id "
        "srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr "
        "srv_agent_port\n"
        "3 web 2 primary-2 127.0.0.1 2 0 200 200 7 1 0 2 0 0 0 0 - 9002 - 0 0 - - 0\n"
        "3 web 1 primary-1 127.0.0.1 2 0 200 200 7 1 0 2 0 0 0 0 - 9001 - 0 0 - - 0\n"
        "3 web 3 canary-1 127.0.0.1 2 0 56 56 7 1 0 2 0 0 0 0 - 9003 - 0 0 - - 0\n"
        "4 web:canary 1 canary-1 127.0.0.1 2 0 1 1 7 1 0 2 0 0 0 0 - 9003 - 0 0 - - 0\n"
        "5 api 1 primary-1 127.0.0.1 0 1 10 10 7 1 0 0 0 0 0 0 - 9101 - 0 0 - - 0\n"
        "6 admin 1 primary-1 127.0.0.1 2 0 1 1 7 1 0 2 0 0 0 0 - 9201 - 0 0 - - 0\n"
        "\n";
    struct kn_haproxy_server_state *rows = NULL, *mine = NULL;
    size_t n = 0, first = 99;
    struct kn_error err;

    (void)state;
    kn_error_clear(&err);
    assert_int_equal(kn_haproxy_parse_servers_state(&rows, &n, reply, &err), 0);
    assert_int_equal(n, 6);
    kn_haproxy_servers_state_sort(rows, n);

    assert_int_equal(kn_haproxy_servers_state_find(rows, n, "web", &first), 3);
    mine = kn_haproxy_servers_state_copy(rows + first, 3);
    assert_string_equal(mine[0].name, "primary-2"); /* HAProxy's order, not sorted by name */
    assert_string_equal(mine[1].name, "primary-1");
    assert_string_equal(mine[2].name, "canary-1");
    assert_int_equal(mine[2].weight, 56); /* the app's canary-1, not its route backend's */
    assert_int_equal(mine[2].port, 9003);
    assert_string_equal(mine[2].backend, "web");
    kn_haproxy_servers_state_free(mine, 3);

    assert_int_equal(kn_haproxy_servers_state_find(rows, n, "web:canary", &first), 1);
    assert_int_equal(rows[first].weight, 1);
    assert_int_equal(kn_haproxy_servers_state_find(rows, n, "api", &first), 1);
    assert_int_equal(rows[first].admin, KN_HAPROXY_MAINT);
    assert_int_equal(kn_haproxy_servers_state_find(rows, n, "admin", &first), 1);
    assert_string_equal(rows[first].addr, "127.0.0.1");
    assert_int_equal(kn_haproxy_servers_state_find(rows, n, "we", &first), 0);
    assert_int_equal(kn_haproxy_servers_state_find(rows, n, "zzz", &first), 0);
    assert_int_equal(kn_haproxy_servers_state_find(rows, n, "", &first), 0);
    assert_null(kn_haproxy_servers_state_copy(rows, 0));
    kn_haproxy_servers_state_free(rows, n);

    /* no row at all */
    assert_int_equal(kn_haproxy_servers_state_find(NULL, 0, "web", &first), 0);
    kn_haproxy_servers_state_sort(NULL, 0);
}

/* `show map` lists HAProxy's maps with their entry counts (HAProxy 2.6.12's words). */
static void test_map_list(void **state)
{
    static const char reply[] =
        "# id (file) description\n"
        "0 (/var/lib/kanaria/local/routes-web.map) pattern loaded from file "
        "'/var/lib/kanaria/local/routes-web.map' used by map at file "
        "'/var/lib/kanaria/local/haproxy.cfg' line 24. curr_ver=0 next_ver=0 entry_cnt=0\n"
        "2 (/var/lib/kanaria/local/routes-api.map) pattern loaded from file "
        "'/var/lib/kanaria/local/routes-api.map' used by map at file "
        "'/var/lib/kanaria/local/haproxy.cfg' line 39. curr_ver=3 next_ver=3 entry_cnt=2\n"
        "4 (/etc/old.map) pattern loaded from file '/etc/old.map' used by map at file "
        "'/etc/haproxy.cfg' line 9\n"
        "\n";
    struct kn_haproxy_map_info *maps = NULL;
    const struct kn_haproxy_map_info *m;
    size_t n = 0;
    struct kn_error err;

    (void)state;
    kn_error_clear(&err);
    assert_int_equal(kn_haproxy_parse_map_list(&maps, &n, reply, &err), 0);
    assert_int_equal(n, 3);
    m = kn_haproxy_map_list_find(maps, n, "/var/lib/kanaria/local/routes-web.map");
    assert_non_null(m);
    assert_int_equal(m->entries, 0);
    m = kn_haproxy_map_list_find(maps, n, "/var/lib/kanaria/local/routes-api.map");
    assert_non_null(m);
    assert_int_equal(m->entries, 2);
    m = kn_haproxy_map_list_find(maps, n, "/etc/old.map");
    assert_non_null(m);
    assert_int_equal(m->entries, -1); /* no count: read it to know */
    assert_null(kn_haproxy_map_list_find(maps, n, "/var/lib/kanaria/local/routes-x.map"));
    kn_haproxy_map_list_free(maps, n);

    /* no map loaded */
    maps = (void *)&err;
    assert_int_equal(kn_haproxy_parse_map_list(&maps, &n, "# id (file) description\n\n", &err), 0);
    assert_null(maps);
    assert_int_equal(n, 0);
    assert_null(kn_haproxy_map_list_find(NULL, 0, "/m.map"));
    kn_haproxy_map_list_free(NULL, 0);

    /* HAProxy's refusal */
    n = 42;
    assert_int_equal(kn_haproxy_parse_map_list(&maps, &n, "Permission denied\n\n", &err), KN_EIO);
    assert_string_equal(err.msg, "haproxy refused 'show map': Permission denied");
    assert_int_equal(n, 42);
}

/* ---- weights ------------------------------------------------------------------------------- */

/* Weights for one split, and the worst share error they give. */
static double split(double p, double c, double b, int np, int nc, int nb, int w[3])
{
    const double percent[3] = {p, c, b};
    const int count[3] = {np, nc, nb};
    double share[3];
    double worst = 0;

    assert_int_equal(kn_haproxy_weights(percent, count, w), 0);
    kn_haproxy_shares(count, w, share);
    for (int v = 0; v < 3; v++) {
        assert_true(w[v] >= 0 && w[v] <= KN_HAPROXY_WEIGHT_MAX);
        assert_true(percent[v] == 0 ? w[v] == 0 : w[v] >= 1);
        worst = fmax(worst, fabs(share[v] - percent[v]));
    }
    return worst;
}

static void test_weights_table(void **state)
{
    int w[3];

    (void)state;
    /* 10 % canary on 1 instance, 90 % primary on 2: exact. */
    assert_true(split(90, 10, 0, 2, 1, 0, w) < 1e-9);
    assert_int_equal(w[0], 252);
    assert_int_equal(w[1], 56);
    assert_int_equal(w[2], 0);
    /* 50/50 with 3 primaries and 1 canary: each primary a third of the canary. */
    assert_true(split(50, 50, 0, 3, 1, 0, w) < 1e-9);
    assert_int_equal(w[0] * 3, w[1]);
    /* Everything to one side; the other's instances get 0. */
    assert_true(split(0, 100, 0, 2, 1, 0, w) < 1e-9);
    assert_int_equal(w[0], 0);
    assert_int_equal(w[1], KN_HAPROXY_WEIGHT_MAX);
    assert_true(split(100, 0, 0, 3, 2, 0, w) < 1e-9);
    assert_int_equal(w[0], KN_HAPROXY_WEIGHT_MAX);
    assert_int_equal(w[1], 0);
    /* 33/67 has no exact integer ratio below 256 for 1:1, but comes within 0.2 points. */
    assert_true(split(67, 33, 0, 1, 1, 0, w) < 0.2);
    assert_true(split(66.7, 33.3, 0, 4, 3, 0, w) < 0.2);
    /* Primary, canary and baseline together. */
    assert_true(split(80, 10, 10, 5, 1, 1, w) < 1e-9);
    assert_int_equal(w[1], w[2]);
    assert_true(split(90, 5, 5, 10, 2, 1, w) < 0.1);
    /* Below what weights 1..256 can express: the nearest split, 1 canary weight unit beside 256
     * per primary. */
    assert_true(split(99, 1, 0, 1, 10, 0, w) > 2.7);
    assert_int_equal(w[0], 256);
    assert_int_equal(w[1], 1);
}

static void test_weights_invalid(void **state)
{
    int w[3] = {-7, -7, -7};
    const int counts[3] = {2, 1, 1};

    (void)state;
    assert_int_equal(kn_haproxy_weights((const double[3]){90, 20, 0}, counts, w), KN_EINVAL);
    assert_int_equal(kn_haproxy_weights((const double[3]){50, 40, 0}, counts, w), KN_EINVAL);
    assert_int_equal(kn_haproxy_weights((const double[3]){110, -10, 0}, counts, w), KN_EINVAL);
    assert_int_equal(kn_haproxy_weights((const double[3]){0, 0, 0}, counts, w), KN_EINVAL);
    assert_int_equal(kn_haproxy_weights((const double[3]){NAN, 100, 0}, counts, w), KN_EINVAL);
    assert_int_equal(kn_haproxy_weights((const double[3]){90, 10, 0}, (const int[3]){2, 0, 0}, w),
                     KN_EINVAL);
    assert_int_equal(kn_haproxy_weights((const double[3]){90, 10, 0}, (const int[3]){2, -1, 0}, w),
                     KN_EINVAL);
    assert_int_equal(w[0], -7);
    /* A variant at 0 % may have no instance at all. */
    assert_int_equal(kn_haproxy_weights((const double[3]){100, 0, 0}, (const int[3]){1, 0, 0}, w),
                     0);
}

/* How far p lies outside what weights 1..256 can give a variant of `c` instances beside
 * `others` instances (0 inside). */
static double outside(double p, int c, int others)
{
    double lo = 100.0 * c / (c + 256.0 * others);
    double hi = 100.0 * 256 * c / (256.0 * c + others);

    return p < lo ? lo - p : p > hi ? p - hi : 0;
}

/* Every integer split between two variants, and splits with a baseline, for counts up to 10:
 * within 1 point whenever the split can be written at all, else the nearest split. */
static void test_weights_exhaustive(void **state)
{
    int w[3];
    double e;

    (void)state;
    for (int np = 1; np <= 10; np++) {
        for (int nc = 1; nc <= 10; nc++) {
            for (int pc = 0; pc <= 100; pc++) {
                e = split(100 - pc, pc, 0, np, nc, 0, w);
                double out =
                    pc == 0 || pc == 100 ? 0 : fmax(outside(100 - pc, np, nc), outside(pc, nc, np));
                if (e > 1 + out + 1e-9) {
                    fail_msg("counts %d/%d, %d%% canary: error %.3f points", np, nc, pc, e);
                }
                if (pc >= 5 && pc <= 95 && e > 1) {
                    fail_msg("counts %d/%d, %d%% canary: error %.3f points", np, nc, pc, e);
                }
            }
            for (int nb = 1; nb <= 10; nb++) {
                for (int pc = 1; pc <= 49; pc += 3) {
                    e = split(100 - 2 * pc, pc, pc, np, nc, nb, w);
                    double out = fmax(outside(100 - 2 * pc, np, nc + nb),
                                      fmax(outside(pc, nc, np + nb), outside(pc, nb, np + nc)));
                    if (e > 1 + out + 1e-9) {
                        fail_msg("counts %d/%d/%d, %d%% canary and baseline: error %.3f points", np,
                                 nc, nb, pc, e);
                    }
                }
            }
        }
    }
}

/* ---- configuration ------------------------------------------------------------------------- */

static void test_config_render(void **state)
{
    const struct kn_haproxy_cfg_server servers[] = {
        {.name = "primary-1", .addr = "127.0.0.1", .port = 9001, .weight = 252},
        {.name = "canary-1", .addr = "127.0.0.1", .port = 9002, .weight = 56, .maint = true},
    };
    const struct kn_haproxy_cfg_app apps[] = {
        {.name = "hello", .bind = "127.0.0.1:8080", .servers = servers, .server_count = 2},
        {.name = "empty", .bind = "*:8081"},
    };
    struct kn_haproxy_cfg cfg = {
        .stats_socket = "/run/kanaria/haproxy.sock",
        .pid_file = "/run/kanaria/haproxy.pid",
        .prometheus_bind = "127.0.0.1:8405",
        .apps = apps,
        .app_count = 2,
    };
    char *text = NULL;
    struct kn_error err;

    (void)state;
    kn_error_clear(&err);
    assert_int_equal(kn_haproxy_config_render(&text, &cfg, &err), 0);
    assert_string_equal(text,
                        "# Generated by kanaria: edits are lost when kanaria writes it again.\n"
                        "global\n"
                        "    master-worker\n"
                        "    noreuseport\n"
                        "    stats socket /run/kanaria/haproxy.sock mode 600 level admin "
                        "expose-fd listeners\n"
                        "    pidfile /run/kanaria/haproxy.pid\n"
                        "\n"
                        "defaults\n"
                        "    mode http\n"
                        "    timeout connect 2s\n"
                        "    timeout client 30s\n"
                        "    timeout server 30s\n"
                        "\n"
                        "frontend kanaria_prometheus\n"
                        "    bind 127.0.0.1:8405\n"
                        "    http-request use-service prometheus-exporter if { path /metrics }\n"
                        "\n"
                        "frontend fe_hello\n"
                        "    bind 127.0.0.1:8080\n"
                        "    default_backend hello\n"
                        "\n"
                        "backend hello\n"
                        "    balance roundrobin\n"
                        "    server primary-1 127.0.0.1:9001 weight 252\n"
                        "    server canary-1 127.0.0.1:9002 weight 56 disabled\n"
                        "\n"
                        "frontend fe_empty\n"
                        "    bind *:8081\n"
                        "    default_backend empty\n"
                        "\n"
                        "backend empty\n"
                        "    balance roundrobin\n");
    free(text);

    /* Without the exporter and the pid file. */
    cfg.prometheus_bind = NULL;
    cfg.pid_file = NULL;
    cfg.app_count = 0;
    assert_int_equal(kn_haproxy_config_render(&text, &cfg, &err), 0);
    assert_null(strstr(text, "prometheus"));
    assert_null(strstr(text, "pidfile"));
    free(text);
    text = NULL;
}

static void test_config_render_refuses(void **state)
{
    struct kn_haproxy_cfg_server servers[2] = {
        {.name = "primary-1", .addr = "127.0.0.1", .port = 9001, .weight = 1},
        {.name = "primary-1", .addr = "127.0.0.1", .port = 9002, .weight = 1},
    };
    struct kn_haproxy_cfg_app apps[2] = {
        {.name = "a", .bind = "127.0.0.1:8080"},
        {.name = "b", .bind = "127.0.0.1:8081"},
    };
    struct kn_haproxy_cfg cfg = {
        .stats_socket = "/tmp/s.sock",
        .pid_file = "/tmp/h.pid",
        .apps = apps,
        .app_count = 2,
    };
    char *text = NULL;
    struct kn_error err;
    char long_path[200];

    (void)state;
    kn_error_clear(&err);
    apps[1].name = "a";
    assert_int_equal(kn_haproxy_config_render(&text, &cfg, &err), KN_EINVAL);
    assert_string_equal(err.msg, "haproxy backend 'a' is listed twice");
    apps[1].name = "b\n    server evil 1.2.3.4:80";
    assert_int_equal(kn_haproxy_config_render(&text, &cfg, &err), KN_EINVAL);
    apps[1].name = "b";
    apps[1].servers = servers;
    apps[1].server_count = 2;
    assert_int_equal(kn_haproxy_config_render(&text, &cfg, &err), KN_EINVAL);
    assert_string_equal(err.msg, "haproxy server 'b/primary-1' is listed twice");
    apps[1].server_count = 1;
    servers[0].weight = 300;
    assert_int_equal(kn_haproxy_config_render(&text, &cfg, &err), KN_EINVAL);
    servers[0].weight = 1;
    apps[0].bind = "127.0.0.1";
    assert_int_equal(kn_haproxy_config_render(&text, &cfg, &err), KN_EINVAL);
    assert_string_equal(err.msg, "app 'a' bind must be ADDRESS:PORT with a port from 1 to 65535 "
                                 "(like 127.0.0.1:8080)");
    apps[0].bind = "127.0.0.1:0";
    assert_int_equal(kn_haproxy_config_render(&text, &cfg, &err), KN_EINVAL);
    apps[0].bind = "127.0.0.1:80 ssl crt /x";
    assert_int_equal(kn_haproxy_config_render(&text, &cfg, &err), KN_EINVAL);
    apps[0].bind = "127.0.0.1:8080";
    cfg.stats_socket = "/tmp/my socket";
    assert_int_equal(kn_haproxy_config_render(&text, &cfg, &err), KN_EINVAL);
    assert_string_equal(err.msg, "haproxy stats socket path has byte 0x20 at offset 7: spaces, "
                                 "quotes, '\\', '#' and '$' are not allowed");
    memset(long_path, 'x', sizeof(long_path) - 1);
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    cfg.stats_socket = long_path;
    assert_int_equal(kn_haproxy_config_render(&text, &cfg, &err), KN_EINVAL);
    assert_string_equal(err.msg, "haproxy stats socket path is longer than 107 bytes");
    cfg.stats_socket = "/tmp/s.sock";
    cfg.pid_file = "/tmp/$HOME";
    assert_int_equal(kn_haproxy_config_render(&text, &cfg, &err), KN_EINVAL);
    cfg.pid_file = "/tmp/h.pid";
    cfg.prometheus_bind = "8405";
    assert_int_equal(kn_haproxy_config_render(&text, &cfg, &err), KN_EINVAL);
    cfg.prometheus_bind = "127.0.0.1:8405";
    assert_int_equal(kn_haproxy_config_render(&text, &cfg, &err), 0);
    assert_non_null(text);
    free(text);
}

/* ---- the runtime client without HAProxy ---------------------------------------------------- */

struct result {
    bool done;
    int calls;
    int status;
    char *text;
};

static void on_result(int status, const char *text, void *data)
{
    struct result *r = data;

    r->done = true;
    r->calls++;
    r->status = status;
    free(r->text);
    r->text = kn_strdup(text ? text : "");
}

static void result_reset(struct result *r)
{
    free(r->text);
    memset(r, 0, sizeof(*r));
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Run the loop until *flag is set, at most timeout_ms; false on timeout. A ticking timer keeps
 * the loop alive meanwhile: the managed HAProxy's handle does not (it is unreferenced), and
 * without it uv_run would return at once instead of reaping HAProxy when it exits. */
static bool run_until(uv_loop_t *loop, const bool *flag, long timeout_ms)
{
    uv_timer_t tick;
    uint64_t deadline;

    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    uv_update_time(loop);
    deadline = uv_now(loop) + (uint64_t)timeout_ms;
    while (!*flag && uv_now(loop) < deadline) {
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT); /* finish closing the timer before it goes out of scope */
    return *flag;
}

/* One command, run to completion; the result is in *r (reset first). */
static void command(uv_loop_t *loop, const char *sock, const char *cmd, struct result *r)
{
    result_reset(r);
    assert_int_equal(kn_haproxy_command(loop, sock, cmd, 3000, on_result, r), 0);
    if (!run_until(loop, &r->done, 10000)) {
        fail_msg("no answer to '%s'", cmd);
    }
    assert_int_equal(r->calls, 1);
}

/* Close the loop, which must hold no handle any more. */
static void close_loop(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void test_command_unreachable(void **state)
{
    uv_loop_t loop;
    struct result r = {0};
    char *dir = kn_test_tmpdir();
    char *sock = kn_asprintf("%s/admin.sock", dir);
    char *expected;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;

    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);

    /* No socket at all. */
    command(&loop, sock, "show info", &r);
    assert_int_equal(r.status, KN_EIO);
    expected = kn_asprintf("haproxy is not reachable at %s: no such file or directory", sock);
    assert_string_equal(r.text, expected);
    free(expected);

    /* A socket file nobody listens on (HAProxy gone, file left behind). */
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    command(&loop, sock, "show info", &r);
    assert_int_equal(r.status, KN_EIO);
    expected = kn_asprintf("haproxy is not reachable at %s: connection refused", sock);
    assert_string_equal(r.text, expected);
    free(expected);
    unlink(sock);

    /* Someone listens but never answers. */
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 4), 0);
    result_reset(&r);
    assert_int_equal(kn_haproxy_command(&loop, sock, "show info", 100, on_result, &r), 0);
    assert_true(run_until(&loop, &r.done, 5000));
    assert_int_equal(r.status, KN_EIO);
    assert_string_equal(r.text, "haproxy did not answer within 100 ms");
    close(fd);

    /* Refused before anything is sent; the callback never runs. */
    result_reset(&r);
    assert_int_equal(
        kn_haproxy_command(&loop, sock, "show info\nshutdown sessions", 100, on_result, &r),
        KN_EINVAL);
    assert_int_equal(
        kn_haproxy_command(&loop, sock, "show info;shutdown sessions", 100, on_result, &r),
        KN_EINVAL);
    assert_int_equal(kn_haproxy_command(&loop, sock, "", 100, on_result, &r), KN_EINVAL);
    assert_int_equal(kn_haproxy_command(&loop, "", "show info", 100, on_result, &r), KN_EINVAL);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(r.calls, 0);

    result_reset(&r);
    close_loop(&loop);
    kn_test_rmtree(dir);
    free(sock);
    free(dir);
}

/* ---- a real HAProxy ------------------------------------------------------------------------ */

/* A loopback port free right now: bind port 0, read what the kernel chose, close. */
static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port;

    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* Pids of processes whose command line mentions `needle` (our HAProxy master and workers). */
static size_t pids_with(const char *needle, pid_t *pids, size_t max)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    size_t n = 0;
    char path[300];
    char cmdline[4096];
    FILE *f;
    size_t len;

    if (!d) {
        return 0;
    }
    while ((e = readdir(d)) && n < max) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        if (!(f = fopen(path, "r"))) {
            continue;
        }
        len = fread(cmdline, 1, sizeof(cmdline) - 1, f);
        fclose(f);
        for (size_t i = 0; i < len; i++) {
            cmdline[i] = cmdline[i] ? cmdline[i] : ' ';
        }
        cmdline[len] = '\0';
        if (strstr(cmdline, needle) && strstr(cmdline, "haproxy")) {
            pids[n++] = (pid_t)atol(e->d_name);
        }
    }
    closedir(d);
    return n;
}

struct hx {
    uv_loop_t loop;
    char *dir;
    char *cfg;
    char *sock;
    char *pid;
    char *log;
    int fe_port;
    int prom_port;
    int srv_port;
    struct kn_haproxy_proc *proc;
    bool exited;
    struct result r;
};

static void on_haproxy_exit(struct kn_haproxy_proc *proc, int64_t status, int sig, void *data)
{
    struct hx *h = data;

    (void)proc;
    (void)status;
    (void)sig;
    h->exited = true;
}

static int hx_setup(void **state)
{
    struct hx *h = kn_calloc(1, sizeof(*h));

    assert_int_equal(uv_loop_init(&h->loop), 0);
    h->dir = kn_test_tmpdir();
    h->cfg = kn_asprintf("%s/haproxy.cfg", h->dir);
    h->sock = kn_asprintf("%s/admin.sock", h->dir);
    h->pid = kn_asprintf("%s/haproxy.pid", h->dir);
    h->log = kn_asprintf("%s/haproxy.log", h->dir);
    *state = h;
    return 0;
}

/* Runs after a failed test too: no HAProxy outlives the test. */
static int hx_teardown(void **state)
{
    struct hx *h = *state;
    pid_t pids[16];
    size_t n;

    if (h->proc && !h->exited) {
        kill(kn_haproxy_proc_pid(h->proc), SIGTERM);
        if (!run_until(&h->loop, &h->exited, 5000)) {
            kill(kn_haproxy_proc_pid(h->proc), SIGKILL);
            run_until(&h->loop, &h->exited, 5000);
        }
    }
    /* Workers left by a killed master, if any. */
    n = pids_with(h->cfg, pids, 16);
    for (size_t i = 0; i < n; i++) {
        kill(pids[i], SIGKILL);
    }
    kn_haproxy_proc_free(h->proc);
    result_reset(&h->r);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&h->loop), 0);
    kn_test_rmtree(h->dir);
    free(h->dir);
    free(h->cfg);
    free(h->sock);
    free(h->pid);
    free(h->log);
    free(h);
    return 0;
}

static void hx_write_config(struct hx *h, const struct kn_haproxy_cfg_server *servers, size_t n)
{
    char fe_bind[32];
    char prom_bind[32];
    struct kn_haproxy_cfg_app app = {
        .name = "app", .bind = fe_bind, .servers = servers, .server_count = n};
    /* No pidfile: kn_haproxy_start passes -p. */
    struct kn_haproxy_cfg cfg = {
        .stats_socket = h->sock, .prometheus_bind = prom_bind, .apps = &app, .app_count = 1};
    char *text = NULL;
    struct kn_error err;
    FILE *f;

    snprintf(fe_bind, sizeof(fe_bind), "127.0.0.1:%d", h->fe_port);
    snprintf(prom_bind, sizeof(prom_bind), "127.0.0.1:%d", h->prom_port);
    kn_error_clear(&err);
    if (kn_haproxy_config_render(&text, &cfg, &err) < 0) {
        fail_msg("render: %s", err.msg);
    }
    f = fopen(h->cfg, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(text);
}

/* The whole file (caller frees). */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    struct kn_buf b;
    char chunk[4096];
    size_t n;

    assert_non_null(f);
    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        kn_buf_add(&b, chunk, n);
    }
    fclose(f);
    return kn_buf_detach(&b, NULL);
}

/* Wait (bounded) until the master has re-executed itself in wait mode, as HAProxy 2.6 does
 * right after starting; it marks that in its environment. */
static void wait_master_settled(struct hx *h)
{
    char path[64];
    char env[16384];
    size_t n = 0;
    FILE *f;
    bool settled = false;

    snprintf(path, sizeof(path), "/proc/%d/environ", kn_haproxy_proc_pid(h->proc));
    for (int i = 0; i < 400 && !settled; i++) {
        if ((f = fopen(path, "r"))) {
            n = fread(env, 1, sizeof(env) - 1, f);
            fclose(f);
            for (size_t k = 0; k < n; k++) {
                env[k] = env[k] ? env[k] : '\n';
            }
            env[n] = '\0';
            settled = strstr(env, "HAPROXY_MWORKER_WAIT_ONLY=1") != NULL;
        }
        if (!settled) {
            sleep_ms(25);
        }
    }
    if (!settled) {
        fail_msg("haproxy's master did not enter wait mode");
    }
}

/* Skip the HAProxy tests only where HAProxy is not installed. */
static bool have_haproxy(void)
{
    return access(KN_HAPROXY_BINARY, X_OK) == 0;
}

static void check_config(struct hx *h, struct result *r)
{
    result_reset(r);
    assert_int_equal(kn_haproxy_check_config(&h->loop, NULL, h->cfg, 10000, on_result, r), 0);
    assert_false(r->done); /* never from inside the call */
    if (!run_until(&h->loop, &r->done, 15000)) {
        fail_msg("haproxy -c did not report");
    }
    assert_int_equal(r->calls, 1);
}

/* The rows of `show servers state app`. */
static size_t show_state(struct hx *h, struct kn_haproxy_server_state **s)
{
    char *cmd = NULL;
    size_t n = 0;
    struct kn_error err;

    kn_error_clear(&err);
    assert_int_equal(kn_haproxy_cmd_show_servers_state(&cmd, "app", &err), 0);
    command(&h->loop, h->sock, cmd, &h->r);
    free(cmd);
    if (h->r.status != 0) {
        fail_msg("show servers state: %s", h->r.text);
    }
    if (kn_haproxy_parse_servers_state(s, &n, h->r.text, &err) < 0) {
        fail_msg("parse: %s", err.msg);
    }
    return n;
}

/* Send a command built by a kn_haproxy_cmd_* call (its result build_rc, its text *cmd, freed
 * here); it must succeed. */
static void must(struct hx *h, int build_rc, char **cmd)
{
    char *text = *cmd;

    assert_int_equal(build_rc, 0);
    *cmd = NULL;
    command(&h->loop, h->sock, text, &h->r);
    if (h->r.status != 0) {
        fprintf(stderr, "'%s' failed\n", text);
        free(text);
        fail_msg("%s", h->r.text);
    }
    free(text);
}

/* Wait (bounded) until the admin socket answers. */
static void wait_ready(struct hx *h)
{
    for (int i = 0; i < 200; i++) {
        command(&h->loop, h->sock, "show info", &h->r);
        if (h->r.status == 0) {
            return;
        }
        if (h->exited) {
            fail_msg("haproxy exited at start; see %s", h->log);
        }
        sleep_ms(25);
    }
    fail_msg("haproxy's admin socket did not answer within 5 s: %s", h->r.text);
}

static void test_haproxy_check_config(void **state)
{
    struct hx *h = *state;
    struct result r = {0};

    if (!have_haproxy()) {
        skip();
    }
    h->fe_port = free_port();
    h->prom_port = free_port();
    hx_write_config(h, NULL, 0);
    check_config(h, &r);
    if (r.status != 0) {
        fail_msg("haproxy -c: %s", r.text);
    }

    kn_test_write(h->dir, "haproxy.cfg", "defaults\n    mode http\nbackend app\n    bogus_kw 1\n");
    check_config(h, &r);
    assert_int_equal(r.status, KN_ESCHEMA);
    assert_non_null(strstr(r.text, "haproxy rejected"));
    assert_non_null(strstr(r.text, "bogus_kw"));

    result_reset(&r);
    assert_int_equal(
        kn_haproxy_check_config(&h->loop, "/nonexistent/haproxy", h->cfg, 1000, on_result, &r), 0);
    assert_true(run_until(&h->loop, &r.done, 5000));
    assert_int_equal(r.status, KN_ENOENT);
    assert_string_equal(r.text, "cannot run /nonexistent/haproxy: no such file or directory");
    result_reset(&r);
}

static void test_haproxy_runtime(void **state)
{
    struct hx *h = *state;
    struct kn_haproxy_server_state *s = NULL;
    size_t n;
    char *cmd = NULL;
    struct kn_error err;
    struct kn_haproxy_launch launch = {0};
    pid_t pids[16];
    char *log;

    if (!have_haproxy()) {
        skip();
    }
    kn_error_clear(&err);
    h->fe_port = free_port();
    h->prom_port = free_port();
    h->srv_port = free_port();
    hx_write_config(h, NULL, 0);
    check_config(h, &h->r);
    if (h->r.status != 0) {
        fail_msg("haproxy -c: %s", h->r.text);
    }
    assert_int_equal(kn_haproxy_running(h->pid, &err), 0);

    launch.cfg_path = h->cfg;
    launch.pid_path = h->pid;
    launch.log_path = h->log;
    launch.on_exit = on_haproxy_exit;
    launch.data = h;
    if (kn_haproxy_start(&h->proc, &h->loop, &launch, &err) < 0) {
        fail_msg("start: %s", err.msg);
    }
    wait_ready(h);
    assert_int_equal(kn_haproxy_running(h->pid, &err), 1);

    /* Add a server: it arrives in maintenance, with its weight. */
    must(h,
         kn_haproxy_cmd_add_server(&cmd, "app", "primary-1", "127.0.0.1", h->srv_port, 100, &err),
         &cmd);
    assert_string_equal(h->r.text, "New server registered.\n\n");
    n = show_state(h, &s);
    assert_int_equal(n, 1);
    assert_string_equal(s[0].name, "primary-1");
    assert_string_equal(s[0].addr, "127.0.0.1");
    assert_int_equal(s[0].port, h->srv_port);
    assert_int_equal(s[0].weight, 100);
    assert_int_equal(s[0].admin, KN_HAPROXY_MAINT);
    kn_haproxy_servers_state_free(s, n);

    must(h, kn_haproxy_cmd_enable_server(&cmd, "app", "primary-1", &err), &cmd);
    n = show_state(h, &s);
    assert_int_equal(n, 1);
    assert_int_equal(s[0].admin, KN_HAPROXY_READY);
    assert_int_equal(s[0].weight, 100);
    kn_haproxy_servers_state_free(s, n);

    must(h, kn_haproxy_cmd_set_weight(&cmd, "app", "primary-1", 37, &err), &cmd);
    must(h, kn_haproxy_cmd_set_state(&cmd, "app", "primary-1", KN_HAPROXY_DRAIN, &err), &cmd);
    n = show_state(h, &s);
    assert_int_equal(s[0].weight, 37);
    assert_int_equal(s[0].admin, KN_HAPROXY_DRAIN);
    kn_haproxy_servers_state_free(s, n);

    /* del server needs maintenance first: HAProxy's words come back. */
    assert_int_equal(kn_haproxy_cmd_del_server(&cmd, "app", "primary-1", &err), 0);
    command(&h->loop, h->sock, cmd, &h->r);
    free(cmd);
    assert_int_equal(h->r.status, KN_EIO);
    assert_string_equal(h->r.text, "haproxy refused 'del server app/primary-1': Only servers in "
                                   "maintenance mode can be deleted.");

    must(h, kn_haproxy_cmd_set_state(&cmd, "app", "primary-1", KN_HAPROXY_MAINT, &err), &cmd);
    n = show_state(h, &s);
    assert_int_equal(s[0].admin, KN_HAPROXY_MAINT);
    kn_haproxy_servers_state_free(s, n);
    must(h, kn_haproxy_cmd_del_server(&cmd, "app", "primary-1", &err), &cmd);
    assert_string_equal(h->r.text, "Server deleted.\n");
    n = show_state(h, &s);
    assert_int_equal(n, 0);
    assert_null(s);

    /* Errors carry HAProxy's own text. */
    command(&h->loop, h->sock, "set weight app/nope 3", &h->r);
    assert_int_equal(h->r.status, KN_EIO);
    assert_string_equal(h->r.text, "haproxy refused 'set weight app/nope 3': No such server.");
    command(&h->loop, h->sock, "show servers state nope", &h->r);
    assert_int_equal(h->r.status, KN_EIO);
    assert_string_equal(h->r.text,
                        "haproxy refused 'show servers state nope': Can't find backend.");
    command(&h->loop, h->sock, "frobnicate now", &h->r);
    assert_int_equal(h->r.status, KN_EIO);
    assert_non_null(strstr(h->r.text, "haproxy refused 'frobnicate now': Unknown command"));

    /* A reload drops servers added at runtime and keeps those in the config. */
    must(h, kn_haproxy_cmd_add_server(&cmd, "app", "canary-1", "127.0.0.1", h->srv_port, 5, &err),
         &cmd);
    n = show_state(h, &s);
    assert_int_equal(n, 1);
    assert_string_equal(s[0].name, "canary-1");
    kn_haproxy_servers_state_free(s, n);
    const struct kn_haproxy_cfg_server kept = {
        .name = "primary-1", .addr = "127.0.0.1", .port = h->srv_port, .weight = 44};
    hx_write_config(h, &kept, 1);
    /* HAProxy 2.6 loses a SIGUSR2 that comes while its master re-executes itself in wait mode
     * just after starting: wait until it has, then reload. The reload is confirmed
     * by its effect and sent again only when it had none for a while. */
    wait_master_settled(h);
    sleep_ms(200);
    for (int i = 0;; i++) {
        if (i % 120 == 0) {
            assert_int_equal(kn_haproxy_reload(h->pid, &err), 0);
        }
        n = show_state(h, &s);
        if (n == 1 && strcmp(s[0].name, "primary-1") == 0) {
            break;
        }
        if (i == 400) {
            log = read_file(h->log);
            fail_msg("after the reload: %zu servers, the first %s\n%s", n, n ? s[0].name : "-",
                     log);
        }
        kn_haproxy_servers_state_free(s, n);
        s = NULL;
        sleep_ms(25);
    }
    assert_string_equal(s[0].name, "primary-1");
    assert_int_equal(s[0].weight, 44);
    assert_int_equal(s[0].admin, KN_HAPROXY_READY);
    kn_haproxy_servers_state_free(s, n);
    assert_false(h->exited); /* the master survives a reload */

    /* Stop: the master and its workers go, and nothing answers any more. */
    assert_int_equal(kn_haproxy_stop(h->pid, &err), 0);
    if (!run_until(&h->loop, &h->exited, 10000)) {
        fail_msg("haproxy did not stop");
    }
    assert_int_equal(kn_haproxy_running(h->pid, &err), 0);
    assert_int_equal(kn_haproxy_stop(h->pid, &err), 0); /* idempotent */
    assert_int_equal(kn_haproxy_reload(h->pid, &err), KN_ENOENT);
    for (int i = 0; i < 200 && pids_with(h->cfg, pids, 16) > 0; i++) {
        sleep_ms(25);
    }
    assert_int_equal(pids_with(h->cfg, pids, 16), 0);
    command(&h->loop, h->sock, "show info", &h->r);
    assert_int_equal(h->r.status, KN_EIO);
    if (!strstr(h->r.text, "haproxy is not reachable at")) {
        fail_msg("after stop: %s", h->r.text);
    }

    /* The generated config drew no complaint from HAProxy, at start or at reload. */
    log = read_file(h->log);
    assert_non_null(strstr(log, "Loading success."));
    if (strstr(log, "parsing [") || strstr(log, "config :")) {
        fail_msg("haproxy complained about the config:\n%s", log);
    }
    free(log);
}

static void test_pid_file(void **state)
{
    struct hx *h = *state;
    struct kn_error err;
    char *text;

    (void)state;
    kn_error_clear(&err);
    assert_int_equal(kn_haproxy_running(h->pid, &err), 0);
    assert_int_equal(kn_haproxy_stop(h->pid, &err), 0);
    assert_int_equal(err.code, 0);
    assert_int_equal(kn_haproxy_reload(h->pid, &err), KN_ENOENT);
    kn_test_write(h->dir, "haproxy.pid", "garbage\n");
    assert_int_equal(kn_haproxy_running(h->pid, &err), KN_EPARSE);
    /* pid 0 and 1 would signal a process group or init. */
    kn_test_write(h->dir, "haproxy.pid", "1\n");
    assert_int_equal(kn_haproxy_stop(h->pid, &err), KN_EPARSE);
    kn_test_write(h->dir, "haproxy.pid", "0\n");
    assert_int_equal(kn_haproxy_stop(h->pid, &err), KN_EPARSE);
    /* A live process that is not HAProxy (this test) is never taken for it. */
    text = kn_asprintf("%ld\n", (long)getpid());
    kn_test_write(h->dir, "haproxy.pid", text);
    free(text);
    assert_int_equal(kn_haproxy_running(h->pid, &err), 0);
    assert_int_equal(kn_haproxy_stop(h->pid, &err), 0);
}

/* Every server of the captured reply beside what kanaria registered: primary-1 ready at 50,
 * canary-1 in maintenance, primary-2 missing, c2 (draining) not kanaria's. */
static void test_live_servers(void **state)
{
    struct kn_haproxy_server_state *rows = NULL;
    size_t nrows = 0;
    struct kn_error err;
    const char *names[] = {"primary-1", "canary-1", "primary-2"};
    const int expected[] = {64, 0, 64};
    struct kn_haproxy_live_server out[4];

    (void)state;
    assert_int_equal(kn_haproxy_parse_servers_state(&rows, &nrows, kn_state_reply, &err), 0);
    assert_int_equal(kn_haproxy_live_servers(out, 4, names, expected, 3, rows, nrows), 4);
    assert_string_equal(out[0].name, "primary-1");
    assert_string_equal(out[0].state, "ready");
    assert_int_equal(out[0].weight, 50);
    assert_int_equal(out[0].expected_weight, 64);
    assert_string_equal(out[1].name, "canary-1");
    assert_string_equal(out[1].state, "maint");
    assert_int_equal(out[1].weight, 10);
    assert_int_equal(out[1].expected_weight, 0);
    assert_string_equal(out[2].name, "primary-2");
    assert_string_equal(out[2].state, "missing");
    assert_string_equal(out[3].name, "c2");
    assert_string_equal(out[3].state, "drain");
    assert_int_equal(out[3].weight, 7);
    assert_int_equal(out[3].expected_weight, -1);
    /* past max: counted, not written */
    memset(out, 0, sizeof(out));
    assert_int_equal(kn_haproxy_live_servers(out, 2, names, expected, 3, rows, nrows), 4);
    assert_string_equal(out[1].name, "canary-1");
    assert_string_equal(out[2].name, "");
    kn_haproxy_servers_state_free(rows, nrows);
}

/* Each server against what kanaria set, in the words drift shows: one primary server of four
 * in maintenance changes no variant's share, so only its own line shows it. */
static void test_server_drift(void **state)
{
    struct kn_haproxy_live_server s = {.name = "primary-3", .state = "ready", .weight = 64,
                                       .expected_weight = 64};
    char out[256];

    (void)state;
    assert_int_equal(kn_haproxy_server_drift(&s, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    snprintf(s.state, sizeof(s.state), "maint");
    assert_int_equal(kn_haproxy_server_drift(&s, out, sizeof(out)), 1);
    assert_string_equal(out, "primary-3 is in maintenance (expected ready)");
    snprintf(s.state, sizeof(s.state), "ready");
    s.weight = 0;
    assert_int_equal(kn_haproxy_server_drift(&s, out, sizeof(out)), 1);
    assert_string_equal(out, "primary-3 weight 0 (expected 64)");
    snprintf(s.state, sizeof(s.state), "drain");
    assert_int_equal(kn_haproxy_server_drift(&s, out, sizeof(out)), 1);
    assert_string_equal(out, "primary-3 is in state drain (expected ready); primary-3 weight 0 "
                             "(expected 64)");
    snprintf(s.state, sizeof(s.state), "missing");
    assert_int_equal(kn_haproxy_server_drift(&s, out, sizeof(out)), 1);
    assert_string_equal(out, "primary-3 is missing from haproxy (expected ready)");
    s.expected_weight = -1;
    snprintf(s.state, sizeof(s.state), "ready");
    assert_int_equal(kn_haproxy_server_drift(&s, out, sizeof(out)), 1);
    assert_string_equal(out, "primary-3 is not a server kanaria registered");
}

/* A TCP listener on 127.0.0.1 with SO_REUSEPORT, as a process that shares its port would open
 * it; *port is where. */
static int reuseport_listener(int *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

/* A port another process listens on, even sharing it with SO_REUSEPORT, is not free. */
static void test_bind_probe(void **state)
{
    struct kn_error err;
    char addr[64];
    int port, fd = reuseport_listener(&port);

    (void)state;
    kn_error_clear(&err);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    assert_int_equal(kn_haproxy_bind_probe(addr, &err), KN_EEXISTS);
    assert_non_null(strstr(err.msg, addr));
    assert_non_null(strstr(err.msg, "in use by another process"));
    snprintf(addr, sizeof(addr), "*:%d", port); /* every address holds 127.0.0.1 too */
    assert_int_equal(kn_haproxy_bind_probe(addr, &err), KN_EEXISTS);
    close(fd);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    kn_error_clear(&err);
    assert_int_equal(kn_haproxy_bind_probe(addr, &err), 0);
    assert_int_equal(kn_haproxy_bind_probe("127.0.0.1", &err), KN_EINVAL);
}

/* The admin socket path: a live listener is refused and kept, a stale socket file removed, a
 * file that is not a socket refused. */
static void test_socket_claim(void **state)
{
    char *dir = kn_test_tmpdir();
    char *path = kn_asprintf("%s/admin.sock", dir);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct kn_error err;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    (void)state;
    kn_error_clear(&err);
    assert_int_equal(kn_haproxy_socket_claim(path, &err), 0); /* nothing there */
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(kn_haproxy_socket_claim(path, &err), KN_EEXISTS);
    assert_non_null(strstr(err.msg, "in use by another process"));
    assert_int_equal(access(path, F_OK), 0);
    close(fd); /* the file stays behind: stale */
    assert_int_equal(access(path, F_OK), 0);
    kn_error_clear(&err);
    assert_int_equal(kn_haproxy_socket_claim(path, &err), 0);
    assert_int_equal(access(path, F_OK), -1);
    kn_test_write(dir, "admin.sock", "not a socket\n");
    assert_int_equal(kn_haproxy_socket_claim(path, &err), KN_EEXISTS);
    assert_non_null(strstr(err.msg, "is not a socket"));
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
}

/* Route map keys: a header line or a Cookie line, escaped so that no map line or runtime
 * command splits them; the runtime command doubles backslashes; the config sends a match to
 * the route backend; `show map` replies parse to their keys. */
static void test_routes(void **state)
{
    const struct kn_route_match header = {KN_ROUTE_HEADER, "X-Canary", "al ways;#", 0};
    const struct kn_route_match cookie = {KN_ROUTE_COOKIE, "tester", "^(alice|bob)$", 1};
    const struct kn_route_match bad = {KN_ROUTE_HEADER, "X", "a\nb", 1};
    const struct kn_haproxy_cfg_server servers[] = {
        {.name = "primary-1", .addr = "127.0.0.1", .port = 9001, .weight = 200},
        {.name = "canary-1", .addr = "127.0.0.1", .port = 9002, .weight = 56, .canary = true},
    };
    const struct kn_haproxy_cfg_app app = {.name = "hello", .bind = "127.0.0.1:8080",
                                           .route_map = "/var/lib/kanaria/routes-hello.map",
                                           .servers = servers, .server_count = 2};
    struct kn_haproxy_cfg cfg = {.stats_socket = "/run/k.sock", .apps = &app, .app_count = 1};
    char *key = NULL, *cmd = NULL, *text = NULL, **keys = NULL;
    size_t n = 0;
    struct kn_error err;

    (void)state;
    kn_error_clear(&err);
    assert_int_equal(kn_haproxy_route_regex(&key, &header, &err), 0);
    assert_string_equal(key, "(?:^|\\n)x\\x2dcanary:\\x20*(?:al\\x20ways\\x3b\\x23)\\r");
    assert_int_equal(kn_haproxy_cmd_add_map(&cmd, "/m.map", key, &err), 0);
    assert_string_equal(cmd, "add map /m.map (?:^|\\\\n)x\\\\x2dcanary:\\\\x20*"
                             "(?:al\\\\x20ways\\\\x3b\\\\x23)\\\\r 1");
    free(key);
    free(cmd);
    key = NULL;
    assert_int_equal(kn_haproxy_route_regex(&key, &cookie, &err), 0);
    assert_string_equal(key, "(?:^|\\n)cookie:(?:[^\\r\\n]*\\x3b)?\\x20*tester=(?:(alice|bob))"
                             "(?:\\x3b|\\r)");
    free(key);
    key = NULL;
    assert_int_equal(kn_haproxy_route_regex(&key, &bad, &err), KN_EINVAL);
    assert_null(key);
    cmd = NULL;
    assert_int_equal(kn_haproxy_cmd_add_map(&cmd, "/m.map", "a b", &err), KN_EINVAL);
    assert_int_equal(kn_haproxy_cmd_add_map(&cmd, "/m.map", "a;b", &err), KN_EINVAL);
    assert_int_equal(kn_haproxy_cmd_add_map(&cmd, "/m map", "a", &err), KN_EINVAL);
    assert_null(cmd);

    assert_int_equal(kn_haproxy_config_render(&text, &cfg, &err), 0);
    assert_non_null(strstr(text, "frontend fe_hello\n"
                                 "    bind 127.0.0.1:8080\n"
                                 "    acl kn_route req.hdrs,map_reg(/var/lib/kanaria/routes-hello.map)"
                                 " -m found\n"
                                 "    use_backend hello:canary if kn_route\n"
                                 "    default_backend hello\n"));
    assert_non_null(strstr(text, "\nbackend hello:canary\n"
                                 "    balance roundrobin\n"
                                 "    server canary-1 127.0.0.1:9002 weight 1\n"));
    assert_null(strstr(text, "hello:canary\n    balance roundrobin\n    server primary"));
    free(text);
    /* the route backend's servers take commands like the app's own */
    cmd = NULL;
    assert_int_equal(kn_haproxy_cmd_set_weight(&cmd, "hello:canary", "canary-1", 1, &err), 0);
    free(cmd);
    cmd = NULL;
    assert_int_equal(kn_haproxy_cmd_set_weight(&cmd, "hel:lo", "canary-1", 1, &err), KN_EINVAL);

    assert_int_equal(kn_haproxy_parse_map(&keys, &n, "0x55d0c3a2b130 (?:^|\\n)a:x 1\n"
                                                     "0x55d0c3a2b131 b 1\n\n", &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(keys[0], "(?:^|\\n)a:x");
    assert_string_equal(keys[1], "b");
    free(keys[0]);
    free(keys[1]);
    free(keys);
    assert_int_equal(kn_haproxy_parse_map(&keys, &n, "Unknown map identifier.\n", &err), KN_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_commands_refuse_injection),
        cmocka_unit_test(test_reply_check),
        cmocka_unit_test(test_parse_servers_state),
        cmocka_unit_test(test_servers_state_of_all_backends),
        cmocka_unit_test(test_map_list),
        cmocka_unit_test(test_weights_table),
        cmocka_unit_test(test_weights_invalid),
        cmocka_unit_test(test_weights_exhaustive),
        cmocka_unit_test(test_config_render),
        cmocka_unit_test(test_config_render_refuses),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_command_unreachable),
        cmocka_unit_test(test_live_servers),
        cmocka_unit_test(test_server_drift),
        cmocka_unit_test(test_bind_probe),
        cmocka_unit_test(test_socket_claim),
        cmocka_unit_test_setup_teardown(test_pid_file, hx_setup, hx_teardown),
        cmocka_unit_test_setup_teardown(test_haproxy_check_config, hx_setup, hx_teardown),
        cmocka_unit_test_setup_teardown(test_haproxy_runtime, hx_setup, hx_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
