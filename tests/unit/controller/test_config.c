/* Unit tests of controller/config.c: the reference config, defaults, and the exact text of the
 * located messages for bad configs. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kanaria/alloc.h"
#include "kanaria/config.h"
#include "kanaria/error.h"
#include "kanaria/freeze.h"
#include "kanaria/log.h"
#include "kanaria/metrics.h"
#include "kanaria/platform.h"
#include "kanaria/plugin/platform.h"
#include "kanaria/schema.h"
#include "metrics/prometheus/config.h"
#include "platforms/local/config.h"

#define BASE "dataDir: /var/lib/kanaria\n"

static int setup(void **state)
{
    *state = kn_test_tmpdir();
    return 0;
}

static int teardown(void **state)
{
    kn_test_rmtree(*state);
    free(*state);
    return 0;
}

/* Write `yaml` to dir/kanaria.yaml and load it; returns the load's result. */
static int load(const char *dir, const char *yaml, struct kn_config **cfg, struct kn_diags *diags)
{
    char *path = kn_asprintf("%s/kanaria.yaml", dir);
    int rc;

    kn_test_write(dir, "kanaria.yaml", yaml);
    rc = kn_config_load(cfg, path, diags);
    free(path);
    return rc;
}

static void print_diags(const struct kn_diags *diags)
{
    char buf[1024];

    for (size_t i = 0; i < diags->count; i++) {
        fprintf(stderr, "    diag: %s\n", kn_diag_format(&diags->items[i], buf, sizeof(buf)));
    }
}

/* Load `yaml` and expect it to fail with KN_ESCHEMA and exactly the messages in `want`
 * (NULL-terminated, in order), each written with the file as "kanaria.yaml". */
static void expect_errors(const char *dir, const char *yaml, const char *const *want)
{
    struct kn_config *cfg = NULL;
    struct kn_diags diags;
    char buf[1024];
    size_t n = 0;
    int rc;

    kn_diags_init(&diags, 0);
    rc = load(dir, yaml, &cfg, &diags);
    while (want[n]) {
        n++;
    }
    if (diags.count != n) {
        print_diags(&diags);
    }
    assert_int_equal(rc, KN_ESCHEMA);
    assert_null(cfg);
    assert_int_equal(diags.count, n);
    for (size_t i = 0; i < n; i++) {
        char *expected = kn_asprintf("%s/%s", dir, want[i]);
        assert_string_equal(kn_diag_format(&diags.items[i], buf, sizeof(buf)), expected);
        free(expected);
    }
    kn_diags_release(&diags);
}

#define EXPECT_ERRORS(yaml, ...)                                                                   \
    expect_errors(*state, (yaml), (const char *const[]){__VA_ARGS__, NULL})

/* Load `yaml` and expect success; caller frees the config. */
static struct kn_config *expect_ok(const char *dir, const char *yaml)
{
    struct kn_config *cfg = NULL;
    struct kn_diags diags;
    int rc;

    kn_diags_init(&diags, 0);
    rc = load(dir, yaml, &cfg, &diags);
    print_diags(&diags);
    assert_int_equal(rc, 0);
    assert_int_equal(diags.count, 0);
    assert_non_null(cfg);
    kn_diags_release(&diags);
    return cfg;
}

/* ---- the reference config ------------------------------------------------------------------ */

static void test_example_loads(void **state)
{
    char *path = kn_asprintf("%s/examples/kanaria.yaml", kn_test_source_dir());
    struct kn_config *cfg = NULL;
    struct kn_diags diags;
    const struct kn_repo_config *repo;
    const struct kn_platform_config *local;
    const struct kn_local_config *lc;
    const struct kn_metrics_provider_config *prom;
    const struct kn_prometheus_config *pc;
    const struct kn_user_config *users;
    const struct kn_notification_config *ops;
    int rc;

    (void)state;
    kn_diags_init(&diags, 0);
    rc = kn_config_load(&cfg, path, &diags);
    print_diags(&diags);
    assert_int_equal(rc, 0);
    assert_int_equal(diags.count, 0);
    assert_non_null(cfg);

    assert_string_equal(cfg->data_dir, "/var/lib/kanaria");
    assert_string_equal(cfg->listen, "127.0.0.1:7070");
    assert_string_equal(cfg->tls.cert_file, "/etc/kanaria/tls/cert.pem");
    assert_string_equal(cfg->tls.key_file, "/etc/kanaria/tls/key.pem");

    assert_int_equal(cfg->repositories.count, 1);
    repo = cfg->repositories.items;
    assert_string_equal(repo->name, "deploy");
    assert_string_equal(repo->url, "https://git.example.com/org/deploy.git");
    assert_string_equal(repo->branch, "main");
    assert_int_equal(repo->poll_interval_ms, 30000);
    assert_string_equal(repo->credentials.token_file, "/etc/kanaria/git-token");
    assert_null(repo->credentials.ssh_key_file);
    assert_string_equal(repo->webhook.secret_file, "/etc/kanaria/webhook-secret");

    local = kn_config_platform(cfg, "local");
    assert_non_null(local);
    assert_ptr_equal(local->ptype, kn_platform_type_find("local"));
    assert_string_equal(local->type, "local");
    lc = local->options;
    assert_non_null(lc);
    assert_int_equal(lc->haproxy.managed, 1);
    assert_string_equal(lc->haproxy.socket, "/run/kanaria/haproxy.sock");
    assert_string_equal(lc->haproxy.metrics_bind, "127.0.0.1:8404");
    assert_int_equal(lc->ports.min, 20000);
    assert_int_equal(lc->ports.max, 29999);
    assert_null(kn_config_platform(cfg, "kubernetes"));

    prom = kn_config_metrics_provider(cfg, "prom");
    assert_non_null(prom);
    assert_string_equal(prom->type, "prometheus");
    assert_ptr_equal(prom->mtype, kn_metrics_type_find("prometheus"));
    pc = prom->options;
    assert_non_null(pc);
    assert_string_equal(pc->address, "http://127.0.0.1:9090");
    assert_int_equal(pc->timeout_ms, 10000);
    assert_string_equal(pc->basic_auth.username, "kanaria");
    assert_null(kn_config_metrics_provider(cfg, "datadog"));

    assert_int_equal(cfg->users.count, 2);
    users = cfg->users.items;
    assert_string_equal(users[0].name, "alice");
    assert_int_equal(users[0].role, KN_ROLE_APPROVER);
    assert_string_equal(users[0].token_sha256,
                        "e9fce188e6a192fe5caca5df41e2a52052023d363df7fb11dd47aceb407e3d03");
    assert_string_equal(users[1].name, "bob");
    assert_int_equal(users[1].role, KN_ROLE_OPERATOR);

    assert_int_equal(cfg->notifications.count, 4);
    assert_string_equal(cfg->external_url, "https://kanaria.example.com");
    ops = cfg->notifications.items;
    assert_int_equal(ops[1].type, KN_NOTIFY_SLACK);
    assert_string_equal(ops[1].channel, "#deploys");
    assert_int_equal(ops[2].type, KN_NOTIFY_TEAMS);
    assert_int_equal(ops[3].type, KN_NOTIFY_PAGERDUTY);
    assert_int_equal(ops->type, KN_NOTIFY_WEBHOOK);
    assert_int_equal(ops->events.count, 5);
    assert_string_equal(ops->events.items[0], "WAITING_APPROVAL");
    assert_int_equal(ops->apps.count, 0);

    assert_int_equal(cfg->log.level, KN_LOG_INFO);
    assert_int_equal(cfg->log.format, KN_LOG_LOGFMT);

    assert_int_equal(cfg->freeze_windows.count, 2);
    assert_string_equal(((const struct kn_freeze_window *)cfg->freeze_windows.items)[0].name,
                        "weekend");
    kn_config_free(cfg);
    kn_diags_release(&diags);
    free(path);
}

/* ---- defaults and valid forms -------------------------------------------------------------- */

static void test_defaults(void **state)
{
    struct kn_config *cfg =
        expect_ok(*state, BASE "repositories:\n"
                               "  - name: deploy\n"
                               "    url: /srv/git/deploy.git\n"
                               "platforms:\n"
                               "  - {name: vm, type: local}\n"
                               "metricsProviders:\n"
                               "  - {name: prom, type: prometheus, "
                               "address: 'http://127.0.0.1:9090'}\n"
                               "notifications:\n"
                               "  - {name: ops, url: 'https://hooks.example.com'}\n");
    const struct kn_repo_config *repo = cfg->repositories.items;
    const struct kn_platform_config *vm = kn_config_platform(cfg, "vm");
    const struct kn_local_config *lc = vm ? vm->options : NULL;
    const struct kn_prometheus_config *pc = kn_config_metrics_provider(cfg, "prom")->options;
    const struct kn_notification_config *ops = cfg->notifications.items;

    assert_string_equal(cfg->listen, "127.0.0.1:7070");
    assert_false(kn_schema_isset(&kn_config_schema, cfg, "listen"));
    assert_true(kn_schema_isset(&kn_config_schema, cfg, "dataDir"));
    assert_null(cfg->tls.cert_file);
    assert_string_equal(repo->branch, "main");
    assert_int_equal(repo->poll_interval_ms, 30000);
    assert_null(repo->credentials.token_file);
    assert_non_null(vm);
    assert_string_equal(vm->ptype->name, "local");
    assert_non_null(lc);
    assert_int_equal(lc->haproxy.managed, 1);
    assert_null(lc->haproxy.socket);
    assert_string_equal(lc->haproxy.binary, "haproxy");
    assert_string_equal(lc->haproxy.metrics_bind, "127.0.0.1:8404");
    assert_int_equal(lc->ports.min, 20000);
    assert_int_equal(lc->ports.max, 29999);
    assert_int_equal(pc->timeout_ms, 10000);
    assert_int_equal(ops->type, KN_NOTIFY_WEBHOOK);
    assert_int_equal(ops->events.count, 0);
    assert_int_equal(cfg->log.level, KN_LOG_INFO);
    assert_int_equal(cfg->log.format, KN_LOG_LOGFMT);
    assert_int_equal(cfg->users.count, 0);
    kn_config_free(cfg);
}

/* Without a platforms list the config adds none: the app side decides what that means. */
static void test_no_platforms(void **state)
{
    struct kn_config *cfg = expect_ok(*state, BASE);

    assert_int_equal(cfg->platforms.count, 0);
    assert_null(kn_config_platform(cfg, "local"));
    assert_int_equal(cfg->repositories.count, 0);
    kn_config_free(cfg);
}

static void test_valid_forms(void **state)
{
    struct kn_config *cfg =
        expect_ok(*state, BASE "listen: '[::1]:7443'\n"
                               "repositories:\n"
                               "  - name: a.b_c-1\n"
                               "    url: git@github.com:org/deploy.git\n"
                               "    pollInterval: 0\n"
                               "    credentials: {sshKeyFile: /dev/null}\n"
                               "  - name: b\n"
                               "    url: ssh://git@git.example.com/deploy.git\n"
                               "    pollInterval: 1m30s\n"
                               "    credentials: {sshKeyFile: /dev/null}\n"
                               "  - name: c\n"
                               "    url: file:///srv/git/c.git\n"
                               "  - name: d\n"
                               "    url: ./repos/d\n"
                               "  - name: e\n"
                               "    url: http://git.local/e.git\n"
                               "    credentials: {username: u, tokenFile: /t}\n"
                               "platforms:\n"
                               "  - name: ext\n"
                               "    type: local\n"
                               "    haproxy: {managed: false, socket: /run/h.sock}\n"
                               "    ports: {min: 30000, max: 30000}\n"
                               "users:\n"
                               "  - name: carol\n"
                               "    role: admin\n"
                               "    tokenSha256: "
                               "E9FCE188E6A192FE5CACA5DF41E2A52052023D363DF7FB11DD47"
                               "ACEB407E3D03\n"
                               "notifications:\n"
                               "  - name: chat\n"
                               "    type: slack\n"
                               "    url: https://hooks.slack.com/services/x\n"
                               "    events: [FAILED, ROLLED_BACK]\n"
                               "    apps: [hello]\n"
                               "log: {level: debug, format: json}\n");
    const struct kn_repo_config *repos = cfg->repositories.items;
    const struct kn_user_config *carol = cfg->users.items;

    assert_string_equal(cfg->listen, "[::1]:7443");
    assert_int_equal(repos[0].poll_interval_ms, 0);
    assert_int_equal(repos[1].poll_interval_ms, 90000);
    /* a fetch stops after 10 minutes, or 1 minute with nothing from the remote */
    assert_int_equal(repos[0].fetch_timeout_ms, 600000);
    assert_int_equal(repos[0].fetch_stall_timeout_ms, 60000);
    assert_int_equal(((const struct kn_local_config *)kn_config_platform(cfg, "ext")->options)
                         ->haproxy.managed,
                     0);
    /* hashes are kept in lower case, as a presented token's hash is */
    assert_string_equal(carol->token_sha256,
                        "e9fce188e6a192fe5caca5df41e2a52052023d363df7fb11dd47aceb407e3d03");
    assert_int_equal(carol->role, KN_ROLE_ADMIN);
    assert_int_equal(cfg->log.level, KN_LOG_DEBUG);
    assert_int_equal(cfg->log.format, KN_LOG_JSON);
    kn_config_free(cfg);
}

/* ---- bad configs: the exact located messages ------------------------------------------------ */

static void test_unknown_key(void **state)
{
    EXPECT_ERRORS(BASE "frobnicate: 1\n",
                  "kanaria.yaml:2:1: unknown key 'frobnicate' (allowed: dataDir, listen, externalUrl, driftInterval, tls, "
                  "repositories, platforms, metricsProviders, users, notifications, freezeWindows, log)");
    EXPECT_ERRORS(BASE "repositories:\n"
                       "  - name: deploy\n"
                       "    url: /srv/git/deploy\n"
                       "    brnch: main\n",
                  "kanaria.yaml:5:5: unknown key 'brnch' in 'repositories[0]', did you mean "
                  "'branch'? (allowed: name, url, branch, pollInterval, fetchTimeout, "
                  "fetchStallTimeout, caFile, credentials, webhook)");
}

static void test_missing_data_dir(void **state)
{
    EXPECT_ERRORS("listen: 127.0.0.1:7070\n", "kanaria.yaml:1:1: 'dataDir' is required");
}

static void test_wrong_type(void **state)
{
    EXPECT_ERRORS(BASE "repositories: deploy\n",
                  "kanaria.yaml:2:15: 'repositories' must be a list, got a string");
    EXPECT_ERRORS(BASE "platforms:\n"
                       "  - name: local\n"
                       "    type: local\n"
                       "    haproxy: {managed: yes}\n",
                  "kanaria.yaml:5:24: 'platforms[0].haproxy.managed' must be true or false, got "
                  "a string 'yes'");
}

static void test_duplicate_names(void **state)
{
    EXPECT_ERRORS(BASE "repositories:\n"
                       "  - name: deploy\n"
                       "    url: /srv/git/a\n"
                       "  - name: deploy\n"
                       "    url: /srv/git/b\n",
                  "kanaria.yaml:5:11: repositories[1]: 'name' must be unique, 'deploy' is "
                  "already used at line 3");
    EXPECT_ERRORS(BASE "users:\n"
                       "  - {name: al, role: viewer, tokenSha256: " /* line 3 */
                       "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}\n"
                       "  - {name: al, role: admin, tokenSha256: "
                       "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752}\n",
                  "kanaria.yaml:4:12: users[1]: 'name' must be unique, 'al' is already used at "
                  "line 3");
}

static void test_bad_url(void **state)
{
    EXPECT_ERRORS(BASE "repositories:\n"
                       "  - name: deploy\n"
                       "    url: ftp://git.example.com/deploy.git\n",
                  "kanaria.yaml:4:10: repositories[0]: 'url' must be a local path "
                  "(/srv/git/deploy.git), file://, http://, https://, ssh:// or user@host:path, "
                  "got 'ftp://git.example.com/deploy.git'");
    EXPECT_ERRORS(BASE "repositories:\n"
                       "  - name: deploy\n"
                       "    url: github.com:org/deploy.git\n",
                  "kanaria.yaml:4:10: repositories[0]: 'url' must be a local path "
                  "(/srv/git/deploy.git), file://, http://, https://, ssh:// or user@host:path, "
                  "got 'github.com:org/deploy.git'");
}

static void test_bad_duration(void **state)
{
    EXPECT_ERRORS(BASE "repositories:\n"
                       "  - name: deploy\n"
                       "    url: /srv/git/deploy\n"
                       "    pollInterval: soon\n",
                  "kanaria.yaml:5:19: 'repositories[0].pollInterval' must be a duration like 30s, "
                  "5m or 1h, got 'soon'");
    EXPECT_ERRORS(BASE "repositories:\n"
                       "  - name: deploy\n"
                       "    url: /srv/git/deploy\n"
                       "    pollInterval: 500ms\n",
                  "kanaria.yaml:5:19: repositories[0]: 'pollInterval' must be 0 (webhooks only) "
                  "or at least 1s, got '500ms'");
    EXPECT_ERRORS(BASE "repositories:\n"
                       "  - name: deploy\n"
                       "    url: /srv/git/deploy\n"
                       "    fetchTimeout: 0\n"
                       "    fetchStallTimeout: 100ms\n",
                  "kanaria.yaml:5:19: 'repositories[0].fetchTimeout' must be at least 1s, got 0",
                  "kanaria.yaml:6:24: 'repositories[0].fetchStallTimeout' must be at least 1s, "
                  "got 100ms");
    EXPECT_ERRORS(BASE "metricsProviders:\n"
                       "  - name: prom\n"
                       "    type: prometheus\n"
                       "    address: http://127.0.0.1:9090\n"
                       "    timeout: 10m\n",
                  "kanaria.yaml:6:14: 'metricsProviders[0].timeout' must be between 1s and 5m, "
                  "got 10m");
}

static void test_bad_sha256(void **state)
{
    EXPECT_ERRORS(BASE "users:\n"
                       "  - name: alice\n"
                       "    role: approver\n"
                       "    tokenSha256: 9f86d0\n",
                  "kanaria.yaml:5:18: users[0]: 'tokenSha256' must be the 64 hex digits of a "
                  "SHA-256, got 6 characters (generate with: printf %s TOKEN | sha256sum)");
    /* two bad hashes that agree are two bad hashes, not a shared token */
    EXPECT_ERRORS(BASE "users:\n"
                       "  - {name: a, role: admin, tokenSha256: xyz}\n"
                       "  - {name: b, role: admin, tokenSha256: xyz}\n",
                  "kanaria.yaml:3:41: users[0]: 'tokenSha256' must be the 64 hex digits of a "
                  "SHA-256, got 3 characters (generate with: printf %s TOKEN | sha256sum)",
                  "kanaria.yaml:4:41: users[1]: 'tokenSha256' must be the 64 hex digits of a "
                  "SHA-256, got 3 characters (generate with: printf %s TOKEN | sha256sum)");
}

static void test_shared_token(void **state)
{
    EXPECT_ERRORS(BASE "users:\n"
                       "  - name: alice\n"
                       "    role: approver\n"
                       "    tokenSha256: "
                       "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
                       "  - name: bob\n"
                       "    role: admin\n"
                       "    tokenSha256: "
                       "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08\n",
                  "kanaria.yaml:8:18: users[1]: 'tokenSha256' is already the token of 'alice' "
                  "at line 5, every user needs their own token");
}

static void test_bad_enum(void **state)
{
    EXPECT_ERRORS(BASE "users:\n"
                       "  - name: alice\n"
                       "    role: root\n"
                       "    tokenSha256: "
                       "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n",
                  "kanaria.yaml:4:11: 'users[0].role' must be one of viewer, approver, operator, "
                  "admin, got 'root'");
    EXPECT_ERRORS(BASE "platforms:\n"
                       "  - name: k8s\n"
                       "    type: nomad\n",
                  "kanaria.yaml:4:11: 'platforms[0].type' must be one of local, ecs, kubernetes, got 'nomad'");
}

/* The keys of a platforms[] or metricsProviders[] entry beyond `name` and `type` are those of
 * its type, looked up in the registries: anything else is located and lists what is allowed. */
static void test_keys_by_type(void **state)
{
    EXPECT_ERRORS(BASE "platforms:\n"
                       "  - name: vm\n"
                       "    type: local\n"
                       "    address: 'http://127.0.0.1:9090'\n",
                  "kanaria.yaml:5:5: unknown key 'address' in 'platforms[0]' (allowed: name, "
                  "type, haproxy, ports)");
    EXPECT_ERRORS(BASE "platforms:\n"
                       "  - {name: vm, type: local, port: {min: 20000}}\n",
                  "kanaria.yaml:3:29: unknown key 'port' in 'platforms[0]', did you mean "
                  "'ports'? (allowed: name, type, haproxy, ports)");
    EXPECT_ERRORS(BASE "metricsProviders:\n"
                       "  - name: prom\n"
                       "    type: prometheus\n"
                       "    address: 'http://127.0.0.1:9090'\n"
                       "    ports: {min: 20000}\n",
                  "kanaria.yaml:6:5: unknown key 'ports' in 'metricsProviders[0]' (allowed: "
                  "name, type, platform, address, timeout, basicAuth, bearerTokenFile)");
    /* an unknown type lists the registered ones; its keys are not judged */
    EXPECT_ERRORS(BASE "metricsProviders:\n"
                       "  - {name: gr, type: graphite, apiKeyFile: /k}\n",
                  "kanaria.yaml:3:22: 'metricsProviders[0].type' must be one of prometheus, "
                  "cloudwatch, datadog, web, got 'graphite'");
    /* only a type that borrows a platform's settings takes `platform` */
    EXPECT_ERRORS(BASE "metricsProviders:\n"
                       "  - {name: prom, type: prometheus, address: 'http://127.0.0.1:9090', "
                       "platform: vm}\n",
                  "kanaria.yaml:3:80: metricsProviders[0]: type prometheus takes no 'platform'");
    /* the type's required keys and its checks, under the entry's path */
    EXPECT_ERRORS(BASE "metricsProviders:\n"
                       "  - {name: prom, type: prometheus}\n",
                  "kanaria.yaml:3:5: 'metricsProviders[0].address' is required");
    EXPECT_ERRORS(BASE "platforms:\n"
                       "  - {name: vm}\n",
                  "kanaria.yaml:3:5: 'platforms[0].type' is required");
}

/* A config without `platforms` runs the embedded default: the local type at its defaults. */
static void test_default_platform(void **state)
{
    struct kn_platform_config p;
    const struct kn_local_config *lc;

    (void)state;
    assert_int_equal(kn_config_platform_default(&p, "local", "local"), 0);
    assert_string_equal(p.name, "local");
    assert_string_equal(p.type, "local");
    assert_ptr_equal(p.ptype, kn_platform_type_find("local"));
    lc = p.options;
    assert_non_null(lc);
    assert_int_equal(lc->haproxy.managed, 1);
    assert_null(lc->haproxy.socket);
    assert_string_equal(lc->haproxy.binary, "haproxy");
    assert_string_equal(lc->haproxy.metrics_bind, "127.0.0.1:8404");
    assert_int_equal(lc->ports.min, 20000);
    assert_int_equal(lc->ports.max, 29999);
    kn_config_platform_release(&p);
    assert_null(p.options);
    kn_config_platform_release(&p); /* twice is fine */

    assert_int_equal(kn_config_platform_default(&p, "k", "nomad"), KN_EINVAL);
    assert_null(p.name);
    assert_null(p.options);
}

static void test_bad_listen(void **state)
{
    EXPECT_ERRORS(BASE "listen: 7070\n",
                  "kanaria.yaml:2:9: 'listen' must be HOST:PORT with a port from 1 to 65535 "
                  "(IPv6 as [::1]:7070), got '7070'");
    EXPECT_ERRORS(BASE "listen: 127.0.0.1:70000\n",
                  "kanaria.yaml:2:9: 'listen' must be HOST:PORT with a port from 1 to 65535 "
                  "(IPv6 as [::1]:7070), got '127.0.0.1:70000'");
    EXPECT_ERRORS(BASE "listen: ::1:7070\n",
                  "kanaria.yaml:2:9: 'listen' must be HOST:PORT with a port from 1 to 65535 "
                  "(IPv6 as [::1]:7070), got '::1:7070'");
}

static void test_credentials_for_url(void **state)
{
    EXPECT_ERRORS(BASE "repositories:\n"
                       "  - name: deploy\n"
                       "    url: ssh://git@git.example.com/deploy.git\n"
                       "    credentials:\n"
                       "      tokenFile: /etc/kanaria/git-token\n",
                  "kanaria.yaml:6:18: repositories[0]: 'credentials.tokenFile' is only for "
                  "http:// and https:// urls, 'url' is 'ssh://git@git.example.com/deploy.git'");
    EXPECT_ERRORS(BASE "repositories:\n"
                       "  - name: deploy\n"
                       "    url: https://git.example.com/deploy.git\n"
                       "    credentials: {sshKeyFile: /k}\n",
                  "kanaria.yaml:5:31: repositories[0]: 'credentials.sshKeyFile' is only for "
                  "ssh:// and user@host:path urls, 'url' is "
                  "'https://git.example.com/deploy.git'");
    EXPECT_ERRORS(BASE "repositories:\n"
                       "  - name: deploy\n"
                       "    url: https://git.example.com/deploy.git\n"
                       "    credentials: {tokenFile: /t, sshKeyFile: /k}\n",
                  "kanaria.yaml:5:46: repositories[0].credentials: 'tokenFile' and 'sshKeyFile' "
                  "cannot both be set");
}

static void test_bad_repo_name(void **state)
{
    EXPECT_ERRORS(BASE "repositories:\n"
                       "  - name: my deploy\n"
                       "    url: /srv/git/deploy\n",
                  "kanaria.yaml:3:11: repositories[0]: 'name' may hold only letters, digits, "
                  "'.', '_' and '-', got 'my deploy'");
}

static void test_tls_pair(void **state)
{
    EXPECT_ERRORS(BASE "tls:\n"
                       "  certFile: /etc/kanaria/cert.pem\n",
                  "kanaria.yaml:3:3: tls: 'certFile' and 'keyFile' go together, 'keyFile' is "
                  "missing");
}

static void test_unknown_event(void **state)
{
    EXPECT_ERRORS(BASE "notifications:\n"
                       "  - name: ops\n"
                       "    url: https://hooks.example.com/x\n"
                       "    events: [FAILED, DEPLOYED]\n",
                  "kanaria.yaml:5:22: notifications[0]: 'events[1]' must be one of TRIGGERED, "
                  "PLANNED, STAGE_STARTED, STAGE_FINISHED, WAITING_APPROVAL, APPROVED, REJECTED, "
                  "ROLLING_BACK, ROLLED_BACK, SUCCEEDED, FAILED, CANCELLED, DRIFT_DETECTED, RUNNING, "
                  "STAGE_LOG, SUPERSEDED, DRIFT_RESOLVED, INVALID_APP, FORCE_PUSHED, "
                  "CANCEL_REQUESTED, ROLLBACK_REQUESTED, SYNC_REQUESTED, SKIP_REQUESTED, "
                  "APP_ORPHANED, APP_PRUNED, APP_RESTORED, PRUNE_REQUESTED, PRUNE_FAILED, BREAK_GLASS, API_REFUSED, got "
                  "'DEPLOYED'");
}

static void test_notification_kinds(void **state)
{
    EXPECT_ERRORS(BASE "externalUrl: kanaria.example.com\n"
                       "notifications:\n"
                       "  - {name: pd, type: pagerduty, url: 'https://events.pagerduty.com/v2/enqueue'}\n"
                       "  - {name: bot, type: slack, url: 'https://slack.com/api', tokenFile: /t}\n"
                       "  - {name: hook, url: 'https://h.example.com', tokenFile: /t}\n"
                       "  - {name: teams, type: teams, url: 'https://t.example.com', secretFile: /s}\n"
                       "  - {name: tpl, url: 'https://h.example.com', template: '{{#app}}x'}\n"
                       "  - {name: in, type: slack, url: 'https://h.example.com', channel: C1}\n",
                  "kanaria.yaml:4:5: notifications[0]: type pagerduty needs 'tokenFile', the file "
                  "holding the routing key",
                  "kanaria.yaml:5:5: notifications[1]: a slack notification with 'tokenFile' needs "
                  "'channel' to post to",
                  "kanaria.yaml:6:59: notifications[2]: 'tokenFile' is for type slack or "
                  "pagerduty, not webhook",
                  "kanaria.yaml:7:74: notifications[3]: 'secretFile' signs webhook bodies only, "
                  "not teams",
                  "kanaria.yaml:8:57: notifications[4]: 'template': unclosed section 'app' opened "
                  "at offset 0",
                  "kanaria.yaml:9:68: notifications[5]: 'channel' is for a slack notification "
                  "with 'tokenFile'; an incoming webhook posts to its own channel",
                  "kanaria.yaml:2:14: 'externalUrl' must be an http:// or https:// url, got "
                  "'kanaria.example.com'");
}

static void test_bad_http_urls(void **state)
{
    EXPECT_ERRORS(BASE "metricsProviders:\n"
                       "  - {name: prom, type: prometheus, address: '127.0.0.1:9090'}\n"
                       "notifications:\n"
                       "  - {name: ops, url: 'hooks.example.com/x'}\n",
                  "kanaria.yaml:3:45: metricsProviders[0]: 'address' must be an http:// or "
                  "https:// url, got '127.0.0.1:9090'",
                  "kanaria.yaml:5:22: notifications[0]: 'url' must be an http:// or https:// url, "
                  "got 'hooks.example.com/x'");
}

static void test_metrics_auth(void **state)
{
    EXPECT_ERRORS(BASE "metricsProviders:\n"
                       "  - name: prom\n"
                       "    type: prometheus\n"
                       "    address: https://prom.example.com\n"
                       "    basicAuth: {username: kanaria}\n"
                       "    bearerTokenFile: /etc/kanaria/prom-token\n",
                  "kanaria.yaml:6:16: metricsProviders[0].basicAuth: 'username' and "
                  "'passwordFile' go together, 'passwordFile' is missing",
                  "kanaria.yaml:7:22: metricsProviders[0]: 'bearerTokenFile' and 'basicAuth' "
                  "cannot both be set");
}

static void test_haproxy(void **state)
{
    EXPECT_ERRORS(BASE "platforms:\n"
                       "  - name: local\n"
                       "    type: local\n"
                       "    haproxy:\n"
                       "      managed: false\n"
                       "      metricsBind: 8404\n",
                  "kanaria.yaml:6:16: platforms[0].haproxy: 'socket' is required when 'managed' "
                  "is false",
                  "kanaria.yaml:7:20: platforms[0].haproxy: 'metricsBind' must be HOST:PORT with "
                  "a port from 1 to 65535 (IPv6 as [::1]:7070), got '8404'");
}

static void test_ports(void **state)
{
    EXPECT_ERRORS(BASE "platforms:\n"
                       "  - name: local\n"
                       "    type: local\n"
                       "    ports: {min: 30000, max: 20000}\n",
                  "kanaria.yaml:5:12: platforms[0].ports: 'min' (30000) must not be greater than "
                  "'max' (20000)");
    EXPECT_ERRORS(BASE "platforms:\n"
                       "  - name: local\n"
                       "    type: local\n"
                       "    ports: {min: 80}\n",
                  "kanaria.yaml:5:18: 'platforms[0].ports.min' must be between 1024 and 65535, "
                  "got 80");
}

static void test_required_in_list(void **state)
{
    EXPECT_ERRORS(BASE "repositories:\n"
                       "  - url: /srv/git/deploy\n",
                  "kanaria.yaml:3:5: 'repositories[0].name' is required");
}

static void test_empty_file(void **state)
{
    EXPECT_ERRORS("", "kanaria.yaml: empty config");
    EXPECT_ERRORS("# nothing here yet\n", "kanaria.yaml: empty config");
    EXPECT_ERRORS("---\n", "kanaria.yaml: empty config");
}

static void test_two_documents(void **state)
{
    EXPECT_ERRORS(BASE "---\n" BASE, "kanaria.yaml:3:1: expected one YAML document, found 2");
}

/* Only the first message is pinned: what follows it (the required keys of a map that is not
 * there) is the schema engine's business. */
static void test_not_a_map(void **state)
{
    struct kn_config *cfg = NULL;
    struct kn_diags diags;
    char buf[1024];
    char *want = kn_asprintf("%s/kanaria.yaml:1:1: 'document' must be a map, got a list",
                             (const char *)*state);

    kn_diags_init(&diags, 0);
    assert_int_equal(load(*state, "- dataDir: /var/lib/kanaria\n", &cfg, &diags), KN_ESCHEMA);
    assert_null(cfg);
    assert_true(diags.count >= 1);
    assert_string_equal(kn_diag_format(&diags.items[0], buf, sizeof(buf)), want);
    kn_diags_release(&diags);
    free(want);
}

static void test_missing_file(void **state)
{
    char *path = kn_asprintf("%s/nope.yaml", (const char *)*state);
    char *want = kn_asprintf("%s: no such file or directory", path);
    struct kn_config *cfg = (struct kn_config *)&cfg; /* must be reset to NULL */
    struct kn_diags diags;
    char buf[1024];

    kn_diags_init(&diags, 0);
    assert_int_equal(kn_config_load(&cfg, path, &diags), KN_ENOENT);
    assert_null(cfg);
    assert_int_equal(diags.count, 1);
    assert_string_equal(kn_diag_format(&diags.items[0], buf, sizeof(buf)), want);
    kn_diags_release(&diags);
    free(want);
    free(path);
}

static void test_syntax_error(void **state)
{
    struct kn_config *cfg = NULL;
    struct kn_diags diags;

    kn_diags_init(&diags, 0);
    assert_int_equal(load(*state, BASE "listen: [127.0.0.1:7070\n", &cfg, &diags), KN_EPARSE);
    assert_null(cfg);
    assert_int_equal(diags.count, 1);
    assert_non_null(diags.items[0].file);
    assert_true(diags.items[0].line > 0);
    kn_diags_release(&diags);
}

/* Diagnostics already in the list are not this load's problems. */
static void test_diags_appended(void **state)
{
    struct kn_config *cfg = NULL;
    struct kn_diags diags;

    kn_diags_init(&diags, 0);
    kn_diags_add(&diags, NULL, "an earlier problem");
    assert_int_equal(load(*state, BASE, &cfg, &diags), 0);
    assert_non_null(cfg);
    assert_int_equal(diags.count, 1);
    kn_config_free(cfg);
    kn_diags_release(&diags);
}

/* ---- tables and registries ------------------------------------------------------------------ */

static const struct kn_field *field(const struct kn_schema *schema, const char *key)
{
    for (size_t i = 0; i < schema->nfields; i++) {
        if (strcmp(schema->fields[i].key, key) == 0) {
            return &schema->fields[i];
        }
    }
    fail_msg("no field '%s' in %s", key, schema->name);
    return NULL;
}

static void check_help(const struct kn_schema *schema)
{
    for (size_t i = 0; i < schema->nfields; i++) {
        const struct kn_field *f = &schema->fields[i];
        if (!f->help || !f->help[0]) {
            fail_msg("'%s' of %s has no help text", f->key, schema->name);
        }
        assert_true(i < 64);
        if (f->sub) {
            check_help(f->sub);
        }
    }
}

static void test_every_key_has_help(void **state)
{
    struct kn_buf doc;

    (void)state;
    check_help(&kn_config_schema);
    /* the keys of each type are in its descriptor: the `type` names come from the registries */
    assert_int_equal(field(field(&kn_config_schema, "platforms")->sub, "type")->type,
                     KN_TYPE_STRING);
    assert_int_equal(field(field(&kn_config_schema, "metricsProviders")->sub, "type")->type,
                     KN_TYPE_STRING);
    for (size_t i = 0; kn_platform_types[i]; i++) {
        if (kn_platform_types[i]->config_schema) {
            check_help(kn_platform_types[i]->config_schema);
        }
    }
    for (size_t i = 0; kn_metrics_types[i]; i++) {
        if (kn_metrics_types[i]->config_schema) {
            check_help(kn_metrics_types[i]->config_schema);
        }
    }
    kn_buf_init(&doc, KN_BUF_UNBOUNDED);
    kn_schema_describe(&kn_config_schema, NULL, &doc);
    assert_non_null(strstr(doc.data, "| `repositories[].credentials.sshKeyFile` | string |"));
    assert_non_null(strstr(doc.data, "| `listen` | string | 127.0.0.1:7070 |"));
    kn_buf_release(&doc);
}

static void test_platform_registry(void **state)
{
    const struct kn_platform_type *local = kn_platform_type_find("local");

    (void)state;
    assert_non_null(local);
    assert_string_equal(local->name, "local");
    assert_true(local->nkinds >= 1);
    assert_string_equal(local->kinds[0].kind, "LocalService");
    assert_int_equal(local->kinds[0].role, KN_KIND_WORKLOAD);
    assert_int_equal(local->kinds[0].min, 1);
    assert_int_equal(local->kinds[0].max, 1);
    assert_non_null(local->kinds[0].schema);
    assert_non_null(local->check_apps);
    assert_non_null(local->create);
    assert_int_equal(local->caps, KN_PLATFORM_APPLY | KN_PLATFORM_CANARY | KN_PLATFORM_BASELINE |
                                      KN_PLATFORM_TRAFFIC_SPLIT | KN_PLATFORM_LIVE |
                                      KN_PLATFORM_CANCEL | KN_PLATFORM_HEADER_ROUTING);
    assert_false(local->caps & KN_PLATFORM_MIRROR);
    assert_null(kn_platform_type_find("nomad"));
    assert_null(kn_platform_type_find(NULL));
    assert_string_equal(kn_platform_cap_name(KN_PLATFORM_TRAFFIC_SPLIT), "traffic splitting");
    assert_string_equal(kn_platform_cap_name(KN_PLATFORM_BASELINE), "baseline variants");
    assert_string_equal(kn_platform_cap_name(KN_PLATFORM_LIVE), "reading live state");
    assert_non_null(kn_platform_cap_name(KN_PLATFORM_HEADER_ROUTING));
    assert_non_null(kn_platform_cap_name(KN_PLATFORM_MIRROR));
    assert_non_null(kn_platform_cap_name(0x80u));
}

static void test_event_names(void **state)
{
    size_t n = 0;

    (void)state;
    while (kn_event_names[n]) {
        n++;
    }
    assert_int_equal(n, 30);
    assert_string_equal(kn_event_names[0], "TRIGGERED");
    assert_string_equal(kn_event_names[12], "DRIFT_DETECTED");
}

/* What a reload may apply (repositories, users, notifications, log) and the key it names when
 * one that kanaria reads only at start has changed. */
static void test_restart_key(void **state)
{
#define R_DATA   "dataDir: /var/lib/kanaria\n"
#define R_LISTEN "listen: 127.0.0.1:7070\n"
#define R_PLAT   "platforms:\n  - {name: vm, type: local, ports: {min: 20000, max: 20100}}\n"
#define R_PROM                                                                                     \
    "metricsProviders:\n  - {name: prom, type: prometheus, address: 'http://127.0.0.1:9090'}\n"
    static const struct {
        const char *yaml;
        const char *key; /* NULL: the reload applies */
    } cases[] = {
        {R_DATA R_LISTEN R_PLAT R_PROM "repositories:\n  - {name: d, url: /srv/d.git}\n"
                                       "log: {level: debug}\n",
         NULL},
        {"dataDir: /srv/kanaria\n" R_LISTEN R_PLAT R_PROM, "dataDir"},
        {R_DATA "listen: 127.0.0.1:7071\n" R_PLAT R_PROM, "listen"},
        {R_DATA R_LISTEN R_PLAT R_PROM "driftInterval: 7m\n", "driftInterval"},
        {R_DATA R_LISTEN R_PLAT R_PROM "tls: {certFile: /etc/k/cert.pem, keyFile: /etc/k/key.pem}\n",
         "tls.certFile"},
        {R_DATA R_LISTEN "platforms:\n  - {name: vm, type: local, ports: {min: 20000, max: 20200}}\n"
                         R_PROM,
         "platforms[0].ports.max"},
        {R_DATA R_LISTEN "platforms:\n  - {name: vm, type: local, haproxy: {metricsBind: "
                         "'127.0.0.1:9999'}, ports: {min: 20000, max: 20100}}\n" R_PROM,
         "platforms[0].haproxy.metricsBind"},
        {R_DATA R_LISTEN R_PROM, "platforms"},
        /* values are compared, not how they were written: a default given is the same */
        {R_DATA R_LISTEN "platforms:\n  - {name: vm, type: local, ports: {min: 20000, max: 20100}, "
                         "haproxy: {binary: haproxy, managed: true}}\n"
                         "metricsProviders:\n  - {name: prom, type: prometheus, timeout: 10s, "
                         "address: 'http://127.0.0.1:9090'}\n",
         NULL},
        {R_DATA R_LISTEN "platforms:\n  - {name: vm, type: local, ports: {min: 20000, max: 20100}, "
                         "haproxy: {binary: /usr/sbin/haproxy}}\n" R_PROM,
         "platforms[0].haproxy.binary"},
        {R_DATA R_LISTEN "platforms:\n  - {name: vm2, type: local, ports: {min: 20000, max: 20100}}\n"
                         R_PROM,
         "platforms[0].name"},
        {R_DATA R_LISTEN R_PLAT "metricsProviders:\n  - {name: prom, type: prometheus, "
                                "address: 'http://127.0.0.1:9090', bearerTokenFile: /t}\n",
         "metricsProviders[0].bearerTokenFile"},
        {R_DATA R_LISTEN R_PLAT "metricsProviders:\n  - {name: prom, type: prometheus, "
                                "address: 'http://127.0.0.1:9091'}\n",
         "metricsProviders[0].address"},
    };
    struct kn_config *running = expect_ok(*state, R_DATA R_LISTEN R_PLAT R_PROM);
    struct kn_config *cfg;
    char key[64];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cfg = expect_ok(*state, cases[i].yaml);
        if (cases[i].key) {
            assert_int_equal(kn_config_restart_key(running, cfg, key, sizeof(key)), 1);
            assert_string_equal(key, cases[i].key);
        } else {
            assert_int_equal(kn_config_restart_key(running, cfg, key, sizeof(key)), 0);
            assert_string_equal(key, "");
        }
        kn_config_free(cfg);
    }
    kn_config_free(running);
#undef R_DATA
#undef R_LISTEN
#undef R_PLAT
#undef R_PROM
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_loads),
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_platforms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_valid_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_data_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_duration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_sha256, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_enum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_by_type, setup, teardown),
        cmocka_unit_test(test_default_platform),
        cmocka_unit_test_setup_teardown(test_bad_listen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credentials_for_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_repo_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_pair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notification_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_http_urls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_haproxy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_required_in_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_documents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_diags_appended, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_key, setup, teardown),
        cmocka_unit_test(test_every_key_has_help),
        cmocka_unit_test(test_platform_registry),
        cmocka_unit_test(test_event_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
