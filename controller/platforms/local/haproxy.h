/*
 * The HAProxy side of the local platform (design.md §3.5 and §6): runtime-API commands and the
 * parsing of their replies, server weights for a traffic split, the generated configuration of a
 * managed HAProxy, an asynchronous client for the admin socket, and the managed master process.
 *
 * Private to controller/platforms/local. Pure functions (commands, replies, weights, config)
 * touch nothing but their arguments, so unit tests check them without HAProxy. The rest runs on
 * the controller's libuv loop and never blocks it; every callback runs on the loop, exactly once
 * per accepted operation, never from inside the function that started it. A function that
 * returns an error never calls its callback.
 *
 * Names given to HAProxy (backends, servers) may hold only [A-Za-z0-9._-]: nothing from a
 * manifest can add a second command to a runtime-API line (newline, ';') or a keyword to the
 * generated configuration.
 */
#ifndef KANARIA_PLATFORMS_LOCAL_HAPROXY_H
#define KANARIA_PLATFORMS_LOCAL_HAPROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kanaria/error.h"
#include "kanaria/platform.h"
#include "kanaria/stage.h"

#define KN_HAPROXY_BINARY     "/usr/sbin/haproxy"
#define KN_HAPROXY_NAME_MAX   64         /* longest backend or server name kanaria accepts */
#define KN_HAPROXY_ADDR_MAX   64         /* longest server address (IPv4, IPv6 or host name) */
#define KN_HAPROXY_WEIGHT_MAX 256        /* HAProxy's own bound for a server weight */
#define KN_HAPROXY_REPLY_MAX  (4u << 20) /* a longer runtime-API reply fails with KN_ETOOBIG */

/* ---- runtime-API commands ------------------------------------------------------------------ */

/* The administrative state kanaria sets on a server (`set server B/S state ...`). */
enum kn_haproxy_admin {
    KN_HAPROXY_READY = 0, /* in service */
    KN_HAPROXY_DRAIN,     /* finishes what it has, takes no new connections */
    KN_HAPROXY_MAINT,     /* out of service; required before `del server` */
};

/* "ready", "drain" or "maint"; "?" for anything else. */
const char *kn_haproxy_admin_name(enum kn_haproxy_admin state);

/* True when name is 1..KN_HAPROXY_NAME_MAX characters of [A-Za-z0-9._-]. */
bool kn_haproxy_name_valid(const char *name);

/*
 * Build one runtime-API command line, without the trailing newline, into *out (caller frees with
 * free()). 0, or KN_EINVAL with err filled (when not NULL) and *out untouched for a name outside
 * [A-Za-z0-9._-], an address outside [A-Za-z0-9.:-], a port outside 1..65535 or a weight outside
 * 0..256.
 *
 *   add server BACKEND/SERVER ADDR:PORT weight W   (HAProxy adds it in maintenance)
 *   enable server BACKEND/SERVER
 *   set weight BACKEND/SERVER W
 *   set server BACKEND/SERVER state ready|drain|maint
 *   del server BACKEND/SERVER                      (only a server in maintenance)
 *   show servers state BACKEND                     (backend NULL: of every backend)
 */
int kn_haproxy_cmd_add_server(char **out, const char *backend, const char *server, const char *addr,
                              int port, int weight, struct kn_error *err);
int kn_haproxy_cmd_enable_server(char **out, const char *backend, const char *server,
                                 struct kn_error *err);
int kn_haproxy_cmd_set_weight(char **out, const char *backend, const char *server, int weight,
                              struct kn_error *err);
int kn_haproxy_cmd_set_state(char **out, const char *backend, const char *server,
                             enum kn_haproxy_admin state, struct kn_error *err);
int kn_haproxy_cmd_del_server(char **out, const char *backend, const char *server,
                              struct kn_error *err);
int kn_haproxy_cmd_show_servers_state(char **out, const char *backend, struct kn_error *err);

/*
 * Classify HAProxy's reply to `command`. HAProxy answers errors in plain text ("No such
 * server.", "Require 'backend/server'.") and success with an empty line for most commands, so:
 * `add server` succeeds on "New server registered.", `del server` on "Server deleted.",
 * `show servers state` on a version line, `set`/`enable`/`disable`/`clear` commands on an empty
 * reply; any other command succeeds unless HAProxy says "Unknown command" or "Permission
 * denied". 0, or KN_EIO with err saying "haproxy refused 'COMMAND': HAPROXY'S FIRST LINE".
 */
int kn_haproxy_reply_check(const char *command, const char *reply, struct kn_error *err);

/* admin_state bits of `show servers state` (HAProxy's SRV_ADMF_*). */
#define KN_HAPROXY_ADMF_FMAINT 0x01 /* forced maintenance (CLI, or `disabled` in the config) */
#define KN_HAPROXY_ADMF_IMAINT 0x02 /* inherited from a tracked server */
#define KN_HAPROXY_ADMF_CMAINT 0x04 /* `disabled` in the configuration */
#define KN_HAPROXY_ADMF_FDRAIN 0x08 /* forced drain */
#define KN_HAPROXY_ADMF_IDRAIN 0x10 /* inherited drain */
#define KN_HAPROXY_ADMF_RMAINT 0x20 /* address resolution failed */
#define KN_HAPROXY_ADMF_HMAINT 0x40 /* host name not resolved yet */

/* op_state of `show servers state` (HAProxy's SRV_ST_*). */
#define KN_HAPROXY_OP_STOPPED  0
#define KN_HAPROXY_OP_STARTING 1
#define KN_HAPROXY_OP_RUNNING  2
#define KN_HAPROXY_OP_STOPPING 3

/* One row of `show servers state`. */
struct kn_haproxy_server_state {
    char *name;                  /* owned by the array, see kn_haproxy_servers_state_free */
    char *addr;                  /* owned likewise */
    char *backend;               /* be_name, "" when the dump has no such column; likewise */
    int port;                    /* 0 when the server has none */
    int op_state;                /* KN_HAPROXY_OP_* */
    int admin_state;             /* KN_HAPROXY_ADMF_* bits */
    int weight;                  /* the user weight (srv_uweight): what `set weight` set */
    enum kn_haproxy_admin admin; /* admin_state summed up: any MAINT bit, else any DRAIN bit */
};

/*
 * Parse the reply of `show servers state [BACKEND]` (format version 1: a line "1", a line
 * "# be_id be_name srv_id srv_name srv_addr ..." naming the columns, then one row per server;
 * columns are found by name, so added columns do not matter). On success *out is an array of
 * *count rows (NULL when 0; free with kn_haproxy_servers_state_free). A reply that is HAProxy's
 * error text ("Can't find backend.") gives KN_EIO with those words; a malformed one KN_EPARSE
 * with the line number. On failure *out and *count are untouched.
 */
int kn_haproxy_parse_servers_state(struct kn_haproxy_server_state **out, size_t *count,
                                   const char *reply, struct kn_error *err);

/* Free an array from kn_haproxy_parse_servers_state; NULL is a no-op. */
void kn_haproxy_servers_state_free(struct kn_haproxy_server_state *states, size_t count);

/*
 * One `show servers state` of every backend, handed out per backend: sort the parsed rows by
 * backend in place (HAProxy's order kept within each), then find the rows of one backend, and
 * copy them (free the copy with kn_haproxy_servers_state_free; NULL when count is 0). _find
 * returns how many rows the backend has, from *first on; 0 when the dump has none: a backend
 * without servers and a backend HAProxy does not have both give 0, and only `show servers
 * state BACKEND` tells them apart.
 */
void kn_haproxy_servers_state_sort(struct kn_haproxy_server_state *rows, size_t count);
size_t kn_haproxy_servers_state_find(const struct kn_haproxy_server_state *rows, size_t count,
                                     const char *backend, size_t *first);
struct kn_haproxy_server_state *
kn_haproxy_servers_state_copy(const struct kn_haproxy_server_state *rows, size_t count);

/* One server of an app's backend as HAProxy has it, beside what kanaria set. */
struct kn_haproxy_live_server {
    char name[72];       /* "primary-3" */
    char state[16];      /* "ready", "drain", "maint"; "missing": kanaria registered it and
                            HAProxy has it not */
    int weight;          /* its weight now */
    int expected_weight; /* the weight kanaria set; -1: a server kanaria did not register */
};

/*
 * Every server of an app as kanaria's drift check compares them (struct kn_haproxy_live_server): first
 * the `n` servers kanaria registered (names[i], at expected[i]) with the state and user weight
 * of their row in `rows` (a `show servers state` reply), "missing" when no row has their name;
 * then each row no registered name matches, with expected weight -1. At most `max` are written
 * to out; the return value is how many there are (more than max: the rest were not written).
 */
size_t kn_haproxy_live_servers(struct kn_haproxy_live_server *out, size_t max, const char *const *names,
                               const int *expected, size_t n,
                               const struct kn_haproxy_server_state *rows, size_t nrows);

/* How a server differs from what kanaria set, as one line in out ("" when it does not): not
 * registered by kanaria, missing, not ready, at another weight. Returns 1 when it differs. */
int kn_haproxy_server_drift(const struct kn_haproxy_live_server *s, char *out, size_t size);

/* ---- weights ------------------------------------------------------------------------------- */

/*
 * Per-server weights so that each variant's share of the traffic matches its percent, whatever
 * its instance count: share_v = count_v * w_v / sum(count * w). Arrays are indexed by enum
 * kn_variant (primary, canary, baseline).
 *
 * A variant at 0 % gets weight 0 (whatever its count); every other variant at least 1. The
 * search tries each weight 1..256 for the variant with the highest ideal per-server weight
 * (percent / count), rounds the other ideal weights both down and up (clamped to 1..256), and
 * keeps the candidate whose worst share error is the smallest; among equal errors (within
 * 1e-9), the one with the largest weights, which leaves HAProxy the finest split. Exact splits
 * stay exact: a canary at 10 % on 1 instance beside a primary at 90 % on 2 gets weight 56
 * against 252 per primary server (56 / (56 + 2 * 252) = 10 %).
 *
 * Every share is within 1 percentage point of its percent whenever the split can be written
 * with weights 1..256 at all: each non-zero percent p of a variant with c instances lies in
 * [100c / (c + 256 o), 100 * 256c / (256c + o)], o being the other non-zero variants' instance
 * count — for counts up to 10, any percent from 5 to 95. The unit test checks this for every
 * integer split with counts 1..10. Outside that range the nearest expressible split is given
 * (1 % of the traffic to ten canary instances beside one primary becomes 3.8 %): the error is
 * then at most 1 point plus the distance to the range. kn_haproxy_shares tells what will really
 * happen, for the log.
 *
 * 0, or KN_EINVAL (out untouched) when a percent is not within 0..100, the percents do not add
 * up to 100 (+-0.01), a count is negative or above 100000, or a variant with a non-zero percent
 * has no instance.
 */
int kn_haproxy_weights(const double percent[KN_VARIANT_COUNT], const int count[KN_VARIANT_COUNT],
                       int out_weight_per_server[KN_VARIANT_COUNT]);

/* The percent of the traffic each variant receives with these counts and per-server weights
 * (all 0 when no server has weight). */
void kn_haproxy_shares(const int count[KN_VARIANT_COUNT], const int weight[KN_VARIANT_COUNT],
                       double out_percent[KN_VARIANT_COUNT]);

/* ---- generated configuration (managed mode) ----------------------------------------------- */

struct kn_haproxy_cfg_server {
    const char *name; /* "primary-1" */
    const char *addr; /* "127.0.0.1" */
    int port;
    int weight; /* 0..256 */
    bool maint; /* rendered `disabled`: starts in maintenance */
    bool canary; /* also in the app's route backend (with route_map) */
};

/* The backend that requests matching an app's routes go to: NAME:canary, which no app's own
 * backend name can be (':' is not in app names). */
#define KN_HAPROXY_ROUTE_SUFFIX ":canary"

struct kn_haproxy_cfg_app {
    const char *name; /* the backend; the frontend is fe_NAME */
    const char *bind; /* "127.0.0.1:8080" */
    /* the file of the app's routes: the frontend sends a request whose headers match one of
     * its keys (regular expressions on req.hdrs) to the backend NAME:canary, which holds the
     * canary servers; NULL: no routes */
    const char *route_map;
    const struct kn_haproxy_cfg_server *servers;
    size_t server_count;
};

struct kn_haproxy_cfg {
    const char *stats_socket;    /* admin socket path (at most 107 bytes) */
    const char *pid_file;        /* `pidfile`; NULL for none, which is what a config run by
                                    kn_haproxy_start wants: that passes -p, and HAProxy 2.6 logs
                                    an ALERT ("'pidfile' already specified") when both do */
    const char *prometheus_bind; /* "127.0.0.1:8405" for /metrics; NULL for none */
    const struct kn_haproxy_cfg_app *apps;
    size_t app_count;
};

/*
 * Render a haproxy.cfg for a managed HAProxy: master-worker with an admin stats socket that
 * passes its listeners on (seamless reload), `noreuseport` (a port another process holds fails
 * the start instead of being shared), HTTP defaults (connect 2s, client and server 30s),
 * the Prometheus exporter frontend `kanaria_prometheus`, and per app a frontend `fe_APP` bound
 * to its address and a `backend APP` (round robin, no active checks: kanaria checks health
 * itself) holding the given servers. A reload re-reads the file and drops servers added at
 * runtime, so callers render the servers they have now before each reload.
 *
 * Everything is borrowed. On success *out is the text (caller frees with free()); KN_EINVAL with
 * err for a bad name, address, path or bind, or two apps or two servers of an app with the same
 * name.
 */
int kn_haproxy_config_render(char **out, const struct kn_haproxy_cfg *cfg, struct kn_error *err);

/* ---- routes (header and cookie matches) ---------------------------------------------------- */

/*
 * The key of a route map entry for one match (kanaria/platform.h): a regular expression on
 * HAProxy's `req.hdrs` (each header "name: value\r\n", names in lower case), of the header
 * line whose whole value is `value` (or matches the regex; a leading '^' and trailing '$' are
 * dropped), or of a Cookie line holding NAME=VALUE. No space, ';' or '#' in it: a map line and
 * a runtime command keep it whole. 0, or KN_EINVAL with err.
 */
int kn_haproxy_route_regex(char **out, const struct kn_route_match *m, struct kn_error *err);

/* `add map MAP KEY 1` with KEY's backslashes doubled (the runtime API unescapes them), and
 * `VERB map MAP` (clear, show). KN_EINVAL for a bad path or a key with a space or ';'. */
int kn_haproxy_cmd_add_map(char **out, const char *map, const char *key, struct kn_error *err);
int kn_haproxy_cmd_map(char **out, const char *verb, const char *map, struct kn_error *err);

/* The keys of a `show map MAP` reply ("0xADDR KEY VALUE" lines) into *out (*count; each and
 * the array freed by the caller). KN_EIO with HAProxy's words for an error reply. */
int kn_haproxy_parse_map(char ***out, size_t *count, const char *reply, struct kn_error *err);

/* A map HAProxy has loaded, from the list `show map` (without a map) gives. */
struct kn_haproxy_map_info {
    char *file;        /* the map's file, as the configuration names it (owned by the array) */
    long long entries; /* its entry count (entry_cnt); -1 when HAProxy does not say (before
                          2.4): then only `show map FILE` tells whether it is empty */
};

/*
 * The maps of a `show map` reply ("# id (file) description" then "ID (FILE) ... entry_cnt=N"
 * lines) into *out, sorted by file for kn_haproxy_map_list_find (*count; free with
 * kn_haproxy_map_list_free). KN_EIO with HAProxy's words for an error reply; *out and *count
 * untouched on failure. Lines that name no file are skipped.
 */
int kn_haproxy_parse_map_list(struct kn_haproxy_map_info **out, size_t *count, const char *reply,
                              struct kn_error *err);

/* The map of that file in a sorted list, or NULL. Borrowed from the list. */
const struct kn_haproxy_map_info *kn_haproxy_map_list_find(const struct kn_haproxy_map_info *maps,
                                                           size_t count, const char *file);

/* Free a list from kn_haproxy_parse_map_list; NULL is a no-op. */
void kn_haproxy_map_list_free(struct kn_haproxy_map_info *maps, size_t count);

/* ---- addresses a managed HAProxy must own ------------------------------------------------- */

/*
 * Whether a managed HAProxy could listen on `addr` ("HOST:PORT"; HOST empty or '*' for every
 * address) without sharing it: bind a TCP socket there with SO_REUSEADDR and without
 * SO_REUSEPORT, as HAProxy does with `noreuseport`, then close it. Blocking but immediate (a
 * host name is resolved with getaddrinfo). 0 when free; KN_EEXISTS "ADDR is in use by another
 * process"; KN_EINVAL for an address that does not parse or resolve; KN_EIO for any other
 * refusal (a port below 1024, an address this host does not have), with err saying so.
 */
int kn_haproxy_bind_probe(const char *addr, struct kn_error *err);

/*
 * Make the admin socket path free for a managed HAProxy that does not run: HAProxy replaces a
 * socket file at its path, so a live process listening there would lose it silently. 0 when
 * nothing is there, or when a socket is there that nobody listens on (it is removed);
 * KN_EEXISTS "haproxy stats socket PATH is in use by another process" when a connect succeeds,
 * or "... exists and is not a socket"; KN_EIO when it cannot be checked or removed.
 */
int kn_haproxy_socket_claim(const char *path, struct kn_error *err);

/* ---- asynchronous runtime client ----------------------------------------------------------- */

/* Completion: status 0 or a KN_E* code. On success `text` is the reply (or, for a config check,
 * HAProxy's warnings, possibly ""); on failure it says what went wrong, in HAProxy's words when
 * HAProxy answered. Borrowed until the callback returns. */
typedef void (*kn_haproxy_cb)(int status, const char *text, void *data);

/*
 * Send one command to the admin socket at socket_path and collect the reply: connect, write
 * "COMMAND\n", read until HAProxy closes the connection (non-interactive mode answers one
 * command), then classify the reply with kn_haproxy_reply_check. cb runs once with:
 *   0 and the reply;
 *   KN_EIO "haproxy refused 'COMMAND': ..." when HAProxy answered with an error;
 *   KN_EIO "haproxy is not reachable at PATH: ..." (no socket, nobody listening, or the
 *          connection reset before any answer, as while HAProxy stops);
 *   KN_EIO "haproxy did not answer within N ms" (timeout_ms, 0 means 5000);
 *   KN_ETOOBIG when the reply passes KN_HAPROXY_REPLY_MAX.
 * Returns 0, or KN_EINVAL (and cb never runs) for a command holding a newline, '\r' or ';', an
 * empty command, or a socket path longer than a Unix socket address holds. Everything is copied.
 */
int kn_haproxy_command(uv_loop_t *loop, const char *socket_path, const char *command,
                       unsigned timeout_ms, kn_haproxy_cb cb, void *data);

/* ---- managed HAProxy process -------------------------------------------------------------- */

/*
 * Check a configuration with `BINARY -c -f CFG` in a child process, without blocking the loop
 * (the check is async rather than a posix_spawn + bounded waitpid, because even a bounded wait
 * would stall every rollout for up to timeout_ms). binary NULL means KN_HAPROXY_BINARY;
 * timeout_ms 0 means 10000. cb runs once with 0 (text: warnings), KN_ESCHEMA "haproxy rejected
 * CFG: ALERTS", KN_EIO "haproxy -c did not finish within N ms" (the child is killed) or KN_EIO /
 * KN_ENOENT "cannot run BINARY: ..." Returns 0, or KN_EINVAL for a NULL path.
 */
int kn_haproxy_check_config(uv_loop_t *loop, const char *binary, const char *cfg_path,
                            unsigned timeout_ms, kn_haproxy_cb cb, void *data);

struct kn_haproxy_proc;

/* The managed master exited (exit_status, or term_signal when killed by a signal). */
typedef void (*kn_haproxy_exit_cb)(struct kn_haproxy_proc *proc, int64_t exit_status,
                                   int term_signal, void *data);

struct kn_haproxy_launch {
    const char *binary; /* NULL: KN_HAPROXY_BINARY */
    const char *cfg_path;
    const char *pid_path;       /* HAProxy writes the master's pid here (-p) */
    const char *log_path;       /* HAProxy's stdout and stderr are appended here; NULL: /dev/null */
    kn_haproxy_exit_cb on_exit; /* may be NULL */
    void *data;                 /* for on_exit */
};

/*
 * Start `BINARY -W -f CFG -p PID` in master-worker mode, detached in its own session and
 * unreferenced on the loop, so it outlives kanaria and does not keep the loop alive. Does not
 * wait for HAProxy to be ready: poll the admin socket with kn_haproxy_command.
 *
 * *out tracks the child while kanaria runs (the loop reaps it when it exits, so a dead HAProxy
 * never lingers as a zombie); free it with kn_haproxy_proc_free, which leaves HAProxy running.
 * 0, or KN_EINVAL / KN_ENOENT / KN_EIO with err (nothing started, *out untouched).
 */
int kn_haproxy_start(struct kn_haproxy_proc **out, uv_loop_t *loop,
                     const struct kn_haproxy_launch *launch, struct kn_error *err);

/* The master's pid. */
int kn_haproxy_proc_pid(const struct kn_haproxy_proc *proc);

/* True once on_exit has run. */
bool kn_haproxy_proc_exited(const struct kn_haproxy_proc *proc);

/* Stop tracking (on_exit will not run) and free once the loop has closed the handle; HAProxy
 * keeps running. For shutdown: an untracked child that exits is no longer reaped by the loop.
 * The handle never keeps the loop alive, so on_exit only runs while the loop runs for other
 * reasons (a timer, a listener). NULL is a no-op. */
void kn_haproxy_proc_free(struct kn_haproxy_proc *proc);

/*
 * The master named by a pid file, whoever started it (kanaria before a restart included).
 * A pid counts as HAProxy's only while the process exists, is not a zombie, and (where /proc is
 * mounted) its command name starts with "haproxy", so a stale pid file never makes kanaria
 * signal an unrelated process that reused the pid.
 *
 * kn_haproxy_running: 1 running, 0 not (no pid file, or the process is gone), KN_EPARSE for a
 * pid file without a pid, KN_EIO when it cannot be read.
 * kn_haproxy_reload: SIGUSR2 to the master, which re-reads the config and replaces its workers
 * (servers added at runtime are dropped). 0, or KN_ENOENT when HAProxy is not running. 0 means
 * sent, not done: HAProxy 2.6's master re-executes itself in wait mode just after it starts
 * (the second "haproxy version is" line of its log) and a SIGUSR2 arriving meanwhile is lost,
 * so callers confirm a reload by its effect (`show servers state`) and send it again if needed.
 * kn_haproxy_stop: SIGTERM to the master, which stops its workers and exits. 0 also when it was
 * not running (stopping is idempotent), else KN_EPARSE / KN_EIO as above.
 */
int kn_haproxy_running(const char *pid_path, struct kn_error *err);
int kn_haproxy_reload(const char *pid_path, struct kn_error *err);
int kn_haproxy_stop(const char *pid_path, struct kn_error *err);

#endif /* KANARIA_PLATFORMS_LOCAL_HAPROXY_H */
