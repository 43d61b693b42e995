/*
 * The client commands: `kanaria status [APP]`, `history APP`, `approve APP`, `reject APP`, and
 * the operator's `cancel APP`, `rollback APP`, `sync APP`, `skip APP --stage N`, `prune APP`, and
 * `repos [REPO]` (each repository's fetch status). They
 * call the API of a running `kanaria serve` at KANARIA_ADDR (default http://127.0.0.1:7070) with
 * the token in KANARIA_TOKEN (and, for an https server whose certificate no system CA signed,
 * KANARIA_CACERT: a PEM file to verify it with), and print tables, or the server's JSON with
 * --json.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cli/cli.h"
#include "kanaria/alloc.h"
#include "kanaria/error.h"
#include "kanaria/schema.h"

#define KN_CLIENT_DEFAULT_ADDR "http://127.0.0.1:7070"
#define KN_CLIENT_MAX_ANSWER   (16 * 1024 * 1024)
#define KN_CLIENT_TIMEOUT_S    30

/* Options a command takes besides --json and --repo (kn_client_args). */
#define KN_CLIENT_REASON      0x1  /* --reason TEXT */
#define KN_CLIENT_NO_ROLLBACK 0x2  /* --no-rollback */
#define KN_CLIENT_TO          0x4  /* --to REV */
#define KN_CLIENT_STAGE       0x8  /* --stage N */
#define KN_CLIENT_WATCH       0x10 /* --watch */
#define KN_CLIENT_BREAK_GLASS 0x20 /* --break-glass */
#define KN_CLIENT_WAIT        0x40 /* --deployment ID, --timeout D */

/* `kanaria wait`: how long it follows a deployment unless told, and its exit on a timeout. */
#define KN_CLIENT_WAIT_DEFAULT_MS (30LL * 60 * 1000)
#define KN_EXIT_TIMEOUT           3

struct kn_client_opts {
    int json;
    const char *repo;
    const char *reason;
    const char *app;
    int no_rollback;
    const char *to;
    long stage; /* -1: not given */
    int watch;
    int break_glass;
    long long deployment; /* --deployment; 0: not given */
    long long timeout_ms; /* --timeout; 0: not given */
};

struct kn_client_answer {
    long status;
    struct kn_buf body;
};

static size_t kn_client_write(char *ptr, size_t size, size_t n, void *data)
{
    struct kn_buf *b = data;

    return kn_buf_add(b, ptr, size * n) < 0 ? 0 : size * n;
}

/* Percent-encode s for a path segment or a query value (caller frees). */
static char *kn_client_escape(const char *s)
{
    struct kn_buf b;

    kn_buf_init(&b, KN_BUF_UNBOUNDED);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            kn_buf_addch(&b, (char)*p);
        } else {
            kn_buf_addf(&b, "%%%02X", *p);
        }
    }
    kn_buf_addch(&b, '\0');
    return kn_buf_detach(&b, NULL);
}

/* One request to the API. 0 with the answer (any status); KN_EIO when the server could not be
 * reached, with the reason printed. */
static int kn_client_call(const char *method, const char *path, const char *body,
                          struct kn_client_answer *ans)
{
    const char *addr = getenv("KANARIA_ADDR");
    const char *token = getenv("KANARIA_TOKEN");
    const char *cacert = getenv("KANARIA_CACERT");
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    char *url = NULL, *auth = NULL;
    CURL *curl = NULL;
    CURLcode cc;
    size_t alen;
    int rc = 0;

    if (!addr || !*addr) {
        addr = KN_CLIENT_DEFAULT_ADDR;
    }
    kn_buf_init(&ans->body, KN_CLIENT_MAX_ANSWER);
    ans->status = 0;
    alen = strlen(addr);
    while (alen > 0 && addr[alen - 1] == '/') { /* KANARIA_ADDR written with a trailing slash */
        alen--;
    }
    url = kn_asprintf("%.*s%s", (int)alen, addr, path);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(curl = curl_easy_init())) {
        fprintf(stderr, "kanaria: cannot start libcurl\n");
        rc = KN_EIO;
        goto out;
    }
    if (token && *token) {
        auth = kn_asprintf("Authorization: Bearer %s", token);
        headers = curl_slist_append(headers, auth);
    }
    headers = curl_slist_append(headers, "Accept: application/json");
    if (body) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, kn_client_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &ans->body);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)KN_CLIENT_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    if (cacert && *cacert) {
        curl_easy_setopt(curl, CURLOPT_CAINFO, cacert); /* a server with its own certificate */
    }
    if ((cc = curl_easy_perform(curl)) != CURLE_OK) {
        fprintf(stderr, "kanaria: cannot reach %s: %s\n", addr,
                errbuf[0] ? errbuf : curl_easy_strerror(cc));
        rc = KN_EIO;
        goto out;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &ans->status);
    kn_buf_addch(&ans->body, '\0');
out:
    curl_slist_free_all(headers);
    if (curl) {
        curl_easy_cleanup(curl);
    }
    free(auth);
    free(url);
    return rc;
}

/* Print the answer's error (or its status) to stderr and return KN_EXIT_FAILED, or return
 * KN_EXIT_OK for a 2xx answer. */
static int kn_client_check(const struct kn_client_answer *ans, json_t **out)
{
    json_t *j = json_loads(ans->body.data ? ans->body.data : "", 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "error"));

    *out = NULL;
    if (ans->status < 200 || ans->status > 299) {
        fprintf(stderr, "kanaria: %s (HTTP %ld)\n",
                msg ? msg : (ans->body.data && ans->body.data[0] ? ans->body.data : "refused"),
                ans->status);
        json_decref(j);
        return KN_EXIT_FAILED;
    }
    if (!j) {
        fprintf(stderr, "kanaria: the server's answer is not JSON\n");
        return KN_EXIT_FAILED;
    }
    *out = j;
    return KN_EXIT_OK;
}

static const char *kn_client_str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s && *s ? s : "-";
}

/* "2026-11-25 19:40:01" in local time, or "-" for 0. */
static const char *kn_client_time(json_int_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms <= 0 || !localtime_r(&t, &tm)) {
        snprintf(buf, size, "-");
    } else {
        strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
    }
    return buf;
}

static void kn_client_short(const char *commit, char out[8])
{
    snprintf(out, 8, "%.7s", commit && *commit ? commit : "-");
}

static void kn_client_print_app_row(const json_t *app)
{
    const json_t *cur = json_object_get(app, "current");
    const json_t *latest = json_object_get(app, "latest");
    const json_t *d = json_is_object(cur) ? cur : latest;
    const json_t *st = json_is_object(cur) ? json_object_get(cur, "running_stage") : NULL;
    char commit[8], deploy[32], stage[96];
    const char *note = NULL;

    kn_client_short(json_is_object(d) ? json_string_value(json_object_get(d, "commit")) : NULL,
                    commit);
    snprintf(deploy, sizeof(deploy), "-");
    if (json_is_object(d)) {
        snprintf(deploy, sizeof(deploy), "#%lld",
                 (long long)json_integer_value(json_object_get(d, "id")));
    }
    snprintf(stage, sizeof(stage), "-");
    if (json_is_object(st)) {
        snprintf(stage, sizeof(stage), "%s", kn_client_str(st, "name"));
    }
    /* a break-glass skip shows while it runs, and in the reason once it succeeded */
    if (json_is_object(d)) {
        note = json_string_value(json_object_get(d, "break_glass"));
        if (!note && json_string_value(json_object_get(d, "reason")) &&
            strstr(json_string_value(json_object_get(d, "reason")), "(break-glass)")) {
            note = json_string_value(json_object_get(d, "reason"));
        }
    }
    printf("%-20s %-12s %-8s %-12s %-7s %-16s %s%s%s\n", kn_client_str(app, "name"),
           kn_client_str(app, "repo"), deploy,
           json_is_true(json_object_get(app, "pruned"))     ? "PRUNED"
           : json_is_true(json_object_get(app, "orphaned")) ? "ORPHANED"
           : json_is_object(d)                              ? kn_client_str(d, "status")
                                                            : "-",
           commit, stage,
           json_string_value(json_object_get(app, "error")) &&
                   *json_string_value(json_object_get(app, "error"))
               ? "invalid"
               : (json_is_object(d) ? kn_client_str(d, "summary") : "-"),
           note ? " — " : "", note ? note : "");
}

static void kn_client_print_deployments(const json_t *list)
{
    char commit[8], when[32];
    size_t i;
    json_t *d;

    printf("%-6s %-12s %-11s %-7s %-19s %s\n", "ID", "STATUS", "STRATEGY", "COMMIT", "CREATED",
           "SUMMARY / REASON");
    json_array_foreach(list, i, d)
    {
        const char *reason = json_string_value(json_object_get(d, "reason"));
        kn_client_short(json_string_value(json_object_get(d, "commit")), commit);
        printf("%-6lld %-12s %-11s %-7s %-19s %s%s%s\n",
               (long long)json_integer_value(json_object_get(d, "id")), kn_client_str(d, "status"),
               kn_client_str(d, "strategy"), commit,
               kn_client_time(json_integer_value(json_object_get(d, "created_at")), when,
                              sizeof(when)),
               kn_client_str(d, "summary"), reason && *reason ? " — " : "",
               reason && *reason ? reason : "");
    }
}

static void kn_client_print_app(const json_t *app)
{
    const json_t *cur = json_object_get(app, "current");
    const char *err = json_string_value(json_object_get(app, "error"));
    char commit[8];

    printf("app:              %s\n", kn_client_str(app, "name"));
    printf("repository:       %s\n", kn_client_str(app, "repo"));
    printf("path:             %s\n", kn_client_str(app, "path"));
    kn_client_short(json_string_value(json_object_get(app, "last_good")), commit);
    printf("last good:        %s\n", commit);
    if (json_string_value(json_object_get(app, "rolled_back_from")) &&
        *json_string_value(json_object_get(app, "rolled_back_from"))) {
        kn_client_short(json_string_value(json_object_get(app, "rolled_back_from")), commit);
        printf("rolled back from: %s\n", commit);
    }
    if (err && *err) {
        printf("invalid:          %s\n", err);
    }
    if (json_is_true(json_object_get(app, "orphaned"))) {
        char when[32];
        kn_client_time(json_integer_value(json_object_get(app, "orphaned_since")), when,
                       sizeof(when));
        if (json_is_true(json_object_get(app, "pruned"))) {
            printf("orphaned:         since %s, pruned (removed from its platform)\n", when);
        } else {
            printf("orphaned:         since %s: its folder is gone, it still runs (kanaria "
                   "prune %s removes it)\n",
                   when, kn_client_str(app, "name"));
        }
    }
    if (json_string_value(json_object_get(app, "storage_error")) &&
        *json_string_value(json_object_get(app, "storage_error"))) {
        printf("storage error:    %s\n", kn_client_str(app, "storage_error"));
    }
    if (*kn_client_str(app, "drift") && strcmp(kn_client_str(app, "drift"), "-") != 0) {
        printf("drift:            %s%s\n", kn_client_str(app, "drift"),
               json_is_true(json_object_get(app, "self_heal")) ? " (self-heal on)" : "");
    } else {
        printf("drift:            none, live state matches the last good commit\n");
    }
    if (json_is_object(cur)) {
        const json_t *st = json_object_get(cur, "running_stage");
        kn_client_short(json_string_value(json_object_get(cur, "commit")), commit);
        printf("deploying:        #%lld %s %s %s",
               (long long)json_integer_value(json_object_get(cur, "id")), commit,
               kn_client_str(cur, "strategy"), kn_client_str(cur, "status"));
        if (json_is_object(st)) {
            printf(", stage %lld %s", (long long)json_integer_value(json_object_get(st, "index")),
                   kn_client_str(st, "name"));
            if (strcmp(kn_client_str(st, "name"), "WAIT_APPROVAL") == 0) {
                printf(" (kanaria approve %s / kanaria reject %s)", kn_client_str(app, "name"),
                       kn_client_str(app, "name"));
            }
        }
        printf("\n");
    } else {
        printf("deploying:        -\n");
    }
    printf("\n");
    kn_client_print_deployments(json_object_get(app, "deployments"));
}

/* "/api/v1/apps/APP[/suffix]?repo=REPO" (caller frees). */
static char *kn_client_app_path(const struct kn_client_opts *o, const char *suffix)
{
    char *app = kn_client_escape(o->app);
    char *repo = o->repo ? kn_client_escape(o->repo) : NULL;
    char *path =
        kn_asprintf("/api/v1/apps/%s%s%s%s", app, suffix, repo ? "?repo=" : "", repo ? repo : "");

    free(app);
    free(repo);
    return path;
}

/* Parse [--json] [--repo NAME], the options of `allowed` (KN_CLIENT_*) and the positional APP. */
static int kn_client_args(int argc, char **argv, const char *usage, int need_app, int allowed,
                          struct kn_client_opts *o)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"repo", required_argument, NULL, 'r'},
        {"reason", required_argument, NULL, 'm'},
        {"no-rollback", no_argument, NULL, 'n'},
        {"to", required_argument, NULL, 't'},
        {"stage", required_argument, NULL, 's'},
        {"watch", no_argument, NULL, 'w'},
        {"break-glass", no_argument, NULL, 'b'},
        {"deployment", required_argument, NULL, 'd'},
        {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char *end;
    int c;

    memset(o, 0, sizeof(*o));
    o->stage = -1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j':
            o->json = 1;
            break;
        case 'r':
            o->repo = optarg;
            break;
        case 'm':
            if (!(allowed & KN_CLIENT_REASON)) {
                goto usage;
            }
            o->reason = optarg;
            break;
        case 'n':
            if (!(allowed & KN_CLIENT_NO_ROLLBACK)) {
                goto usage;
            }
            o->no_rollback = 1;
            break;
        case 't':
            /* a commit or a prefix of it: at least 7 hex digits */
            if (!(allowed & KN_CLIENT_TO)) {
                goto usage;
            }
            if (strlen(optarg) < 7 || strlen(optarg) > 40 ||
                strspn(optarg, "0123456789abcdefABCDEF") != strlen(optarg)) {
                fprintf(stderr, "kanaria: --to wants a commit: 7 to 40 hex digits, got '%s'\n",
                        optarg);
                goto usage;
            }
            o->to = optarg;
            break;
        case 's':
            o->stage = strtol(optarg, &end, 10);
            if (!(allowed & KN_CLIENT_STAGE) || !*optarg || *end || o->stage < 0 ||
                o->stage > 1000) {
                goto usage;
            }
            break;
        case 'w':
            if (!(allowed & KN_CLIENT_WATCH)) {
                goto usage;
            }
            o->watch = 1;
            break;
        case 'b':
            if (!(allowed & KN_CLIENT_BREAK_GLASS)) {
                goto usage;
            }
            o->break_glass = 1;
            break;
        case 'd':
            o->deployment = strtoll(optarg, &end, 10);
            if (!(allowed & KN_CLIENT_WAIT) || !*optarg || *end || o->deployment <= 0) {
                goto usage;
            }
            break;
        case 'T':
            if (!(allowed & KN_CLIENT_WAIT)) {
                goto usage;
            }
            if (kn_duration_parse(optarg, &o->timeout_ms) < 0 || o->timeout_ms <= 0) {
                fprintf(stderr, "kanaria: --timeout wants a duration such as 90s or 10m, got "
                                "'%s'\n",
                        optarg);
                goto usage;
            }
            break;
        case 'h':
            printf("usage: %s\n", usage);
            exit(KN_EXIT_OK);
        default:
            goto usage;
        }
    }
    if (optind < argc) {
        o->app = argv[optind++];
    }
    if (optind < argc || (need_app && !o->app) || ((allowed & KN_CLIENT_STAGE) && o->stage < 0)) {
        goto usage;
    }
    return 0;
usage:
    fprintf(stderr, "usage: %s\n", usage);
    return KN_EUSAGE;
}

/* Print the answer as the server wrote it. */
static void kn_client_print_json(const struct kn_client_answer *ans)
{
    fputs(ans->body.data ? ans->body.data : "", stdout);
}

/* One status: the table of apps or one app's detail. */
static int kn_client_status(const struct kn_client_opts *op)
{
    struct kn_client_opts o = *op;
    struct kn_client_answer ans = {0};
    json_t *j = NULL, *app;
    char *path = NULL;
    size_t i;
    int rc;

    if (o.app) {
        path = kn_client_app_path(&o, "");
    } else if (o.repo) {
        char *repo = kn_client_escape(o.repo);
        path = kn_asprintf("/api/v1/apps?repo=%s", repo);
        free(repo);
    } else {
        path = kn_strdup("/api/v1/apps");
    }
    if (kn_client_call("GET", path, NULL, &ans) < 0) {
        rc = KN_EXIT_FAILED;
        goto out;
    }
    if ((rc = kn_client_check(&ans, &j)) != KN_EXIT_OK) {
        goto out;
    }
    if (o.json) {
        kn_client_print_json(&ans);
    } else if (o.app) {
        kn_client_print_app(j);
    } else {
        if (json_string_value(json_object_get(j, "storage_error")) &&
            *json_string_value(json_object_get(j, "storage_error"))) {
            printf("storage error: %s\n\n", kn_client_str(j, "storage_error"));
        }
        printf("%-20s %-12s %-8s %-12s %-7s %-16s %s\n", "APP", "REPO", "DEPLOY", "STATUS",
               "COMMIT", "STAGE", "SUMMARY");
        json_array_foreach(json_object_get(j, "apps"), i, app)
        {
            kn_client_print_app_row(app);
        }
    }
out:
    json_decref(j);
    kn_buf_release(&ans.body);
    free(path);
    return rc;
}

/*
 * `status --watch`: the status again every second, on a cleared screen when stdout is a terminal,
 * until Ctrl-C (which ends the process). A failed call is shown and tried again.
 */
int kn_cmd_status(int argc, char **argv)
{
    static const char usage[] = "kanaria status [APP] [--repo NAME] [--json] [--watch]";
    struct kn_client_opts o;
    int tty = isatty(STDOUT_FILENO);
    int rc;

    if (kn_client_args(argc, argv, usage, 0, KN_CLIENT_WATCH, &o) < 0) {
        return KN_EXIT_USAGE;
    }
    if (!o.watch) {
        return kn_client_status(&o);
    }
    for (;;) {
        char stamp[64];
        time_t now = time(NULL);
        struct tm tm;
        if (tty) {
            fputs("\033[H\033[2J", stdout);
        }
        strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));
        printf("every 1s: kanaria status%s%s    %s\n\n", o.app ? " " : "", o.app ? o.app : "",
               stamp);
        rc = kn_client_status(&o);
        if (rc == KN_EXIT_USAGE) {
            return rc;
        }
        fflush(stdout);
        sleep(1);
    }
}

/* The deployment `wait` follows: the given one, else the app's current one, else its latest.
 * 0 and *id, or an exit code with the reason printed. */
static int kn_client_wait_target(const struct kn_client_opts *o, long long *id)
{
    struct kn_client_answer ans = {0};
    json_t *j = NULL, *d;
    char *path;
    int rc;

    if (o->deployment) {
        *id = o->deployment;
        return KN_EXIT_OK;
    }
    path = kn_client_app_path(o, "");
    if (kn_client_call("GET", path, NULL, &ans) < 0) {
        rc = KN_EXIT_FAILED;
        goto out;
    }
    if ((rc = kn_client_check(&ans, &j)) != KN_EXIT_OK) {
        goto out;
    }
    d = json_is_object(json_object_get(j, "current")) ? json_object_get(j, "current")
                                                      : json_object_get(j, "latest");
    *id = json_integer_value(json_object_get(d, "id"));
    if (*id <= 0) {
        fprintf(stderr, "kanaria: app '%s' has no deployment to wait for\n", o->app);
        rc = KN_EXIT_FAILED;
    }
out:
    json_decref(j);
    kn_buf_release(&ans.body);
    free(path);
    return rc;
}

/* Print each stage whose status changed since the last look (seen: "\n" then one
 * "index:status\n" line per status printed). */
static void kn_client_wait_stages(const json_t *stages, struct kn_buf *seen)
{
    const json_t *st;
    size_t i;

    json_array_foreach(stages, i, st)
    {
        char *line;
        if (strcmp(kn_client_str(st, "status"), "NOT_STARTED") == 0) {
            continue; /* listed ahead by the API: said when it starts */
        }
        line = kn_asprintf("\n%lld:%s\n",
                                 (long long)json_integer_value(json_object_get(st, "index")),
                                 kn_client_str(st, "status"));
        if (!seen->data || !strstr(seen->data, line)) {
            printf("stage %lld %s: %s\n",
                   (long long)json_integer_value(json_object_get(st, "index")),
                   kn_client_str(st, "name"), kn_client_str(st, "status"));
            kn_buf_addf(seen, "%s", line + 1); /* seen starts with "\n": each entry follows one */
        }
        free(line);
    }
}

/*
 * `kanaria wait APP [--deployment ID] [--timeout D]`: follow a deployment until it ends, a line
 * for each stage as its status changes; exit 0 on SUCCESS, 1 on FAILURE, CANCELLED or SUPERSEDED
 * (its reason on stderr), 2 on a usage error, 3 when the timeout (default 30m) passes first —
 * what a CI job runs after its push. It asks the API once a second; a call that fails is retried
 * until the timeout.
 */
int kn_cmd_wait(int argc, char **argv)
{
    static const char usage[] =
        "kanaria wait APP [--deployment ID] [--timeout D] [--repo NAME] [--json]";
    struct kn_client_opts o;
    struct kn_buf seen;
    struct timespec t0, now;
    long long id = 0, waited_ms = 0, limit;
    char *path = NULL;
    int rc;

    if (kn_client_args(argc, argv, usage, 1, KN_CLIENT_WAIT, &o) < 0) {
        return KN_EXIT_USAGE;
    }
    limit = o.timeout_ms ? o.timeout_ms : KN_CLIENT_WAIT_DEFAULT_MS;
    if ((rc = kn_client_wait_target(&o, &id)) != KN_EXIT_OK) {
        return rc;
    }
    kn_buf_init(&seen, KN_BUF_UNBOUNDED);
    kn_buf_addch(&seen, '\n');
    path = kn_asprintf("/api/v1/deployments/%lld", id);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct kn_client_answer ans = {0};
        json_t *j = NULL;
        const char *status;

        if (kn_client_call("GET", path, NULL, &ans) == 0 &&
            kn_client_check(&ans, &j) == KN_EXIT_OK) {
            status = kn_client_str(j, "status");
            kn_client_wait_stages(json_object_get(j, "stages"), &seen);
            if (strcmp(status, "SUCCESS") == 0 || strcmp(status, "FAILURE") == 0 ||
                strcmp(status, "CANCELLED") == 0 || strcmp(status, "SUPERSEDED") == 0) {
                if (o.json) {
                    kn_client_print_json(&ans);
                } else {
                    printf("deployment %lld of %s (%.7s): %s\n", id, kn_client_str(j, "app"),
                           kn_client_str(j, "commit"), status);
                }
                if (strcmp(status, "SUCCESS") != 0) {
                    fprintf(stderr, "kanaria: deployment %lld %s: %s\n", id, status,
                            kn_client_str(j, "reason"));
                    rc = KN_EXIT_FAILED;
                }
                json_decref(j);
                kn_buf_release(&ans.body);
                break;
            }
        }
        json_decref(j);
        kn_buf_release(&ans.body);
        fflush(stdout);
        clock_gettime(CLOCK_MONOTONIC, &now);
        waited_ms = (now.tv_sec - t0.tv_sec) * 1000LL + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (waited_ms >= limit) {
            fprintf(stderr, "kanaria: deployment %lld has not ended after %lld s\n", id,
                    limit / 1000);
            rc = KN_EXIT_TIMEOUT;
            break;
        }
        {
            long long ms = limit - waited_ms < 1000 ? limit - waited_ms : 1000;
            struct timespec pause = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
            nanosleep(&pause, NULL);
        }
    }
    kn_buf_release(&seen);
    free(path);
    return rc;
}

int kn_cmd_history(int argc, char **argv)
{
    static const char usage[] = "kanaria history APP [--repo NAME] [--json]";
    struct kn_client_answer ans = {0};
    struct kn_client_opts o;
    json_t *j = NULL;
    char *path = NULL;
    int rc;

    if (kn_client_args(argc, argv, usage, 1, 0, &o) < 0) {
        return KN_EXIT_USAGE;
    }
    path = kn_client_app_path(&o, "/history");
    if (kn_client_call("GET", path, NULL, &ans) < 0) {
        rc = KN_EXIT_FAILED;
        goto out;
    }
    if ((rc = kn_client_check(&ans, &j)) != KN_EXIT_OK) {
        goto out;
    }
    if (o.json) {
        kn_client_print_json(&ans);
    } else {
        kn_client_print_deployments(json_object_get(j, "deployments"));
    }
out:
    json_decref(j);
    kn_buf_release(&ans.body);
    free(path);
    return rc;
}

static int kn_client_decide(int argc, char **argv, int reject)
{
    const char *usage = reject ? "kanaria reject APP [--reason TEXT] [--repo NAME] [--json]"
                               : "kanaria approve APP [--repo NAME] [--json]";
    struct kn_client_answer ans = {0};
    struct kn_client_opts o;
    json_t *j = NULL, *req = NULL;
    char *path = NULL, *body = NULL;
    int rc;

    if (kn_client_args(argc, argv, usage, 1, reject ? KN_CLIENT_REASON : 0, &o) < 0) {
        return KN_EXIT_USAGE;
    }
    path = kn_client_app_path(&o, reject ? "/reject" : "/approve");
    req = o.reason ? json_pack("{s:s}", "reason", o.reason) : json_object();
    body = json_dumps(req, JSON_COMPACT);
    if (kn_client_call("POST", path, body, &ans) < 0) {
        rc = KN_EXIT_FAILED;
        goto out;
    }
    if ((rc = kn_client_check(&ans, &j)) != KN_EXIT_OK) {
        goto out;
    }
    if (o.json) {
        kn_client_print_json(&ans);
    } else {
        printf("%s deployment #%lld of %s at stage %lld %s as %s\n",
               reject ? "rejected" : "approved",
               (long long)json_integer_value(json_object_get(j, "deployment")),
               kn_client_str(j, "app"), (long long)json_integer_value(json_object_get(j, "stage")),
               kn_client_str(j, "stage_name"), kn_client_str(j, "by"));
    }
out:
    json_decref(j);
    json_decref(req);
    kn_buf_release(&ans.body);
    free(body);
    free(path);
    return rc;
}

int kn_cmd_approve(int argc, char **argv)
{
    return kn_client_decide(argc, argv, 0);
}

int kn_cmd_reject(int argc, char **argv)
{
    return kn_client_decide(argc, argv, 1);
}

/* POST an operator action to /api/v1/apps/APP/SUFFIX with `req` (reference stolen); the answer
 * in *out when it is 2xx. Prints the server's JSON with --json. Returns the exit code. */
static int kn_client_action(const struct kn_client_opts *o, const char *suffix, json_t *req,
                            json_t **out)
{
    struct kn_client_answer ans = {0};
    char *path = kn_client_app_path(o, suffix);
    char *body = json_dumps(req, JSON_COMPACT);
    int rc;

    *out = NULL;
    if (kn_client_call("POST", path, body, &ans) < 0) {
        rc = KN_EXIT_FAILED;
        goto out;
    }
    if ((rc = kn_client_check(&ans, out)) == KN_EXIT_OK && o->json) {
        kn_client_print_json(&ans);
    }
out:
    json_decref(req);
    kn_buf_release(&ans.body);
    free(body);
    free(path);
    return rc;
}

static long long kn_client_int(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

int kn_cmd_cancel(int argc, char **argv)
{
    static const char usage[] =
        "kanaria cancel APP [--no-rollback] [--reason TEXT] [--repo NAME] [--json]";
    struct kn_client_opts o;
    json_t *req, *j = NULL;
    int rc;

    if (kn_client_args(argc, argv, usage, 1, KN_CLIENT_NO_ROLLBACK | KN_CLIENT_REASON, &o) < 0) {
        return KN_EXIT_USAGE;
    }
    req = json_pack("{s:b}", "rollback", !o.no_rollback);
    if (o.reason) {
        json_object_set_new(req, "reason", json_string(o.reason));
    }
    if ((rc = kn_client_action(&o, "/cancel", req, &j)) == KN_EXIT_OK && !o.json) {
        printf("cancelled deployment #%lld of %s as %s: %s\n", kn_client_int(j, "deployment"),
               kn_client_str(j, "app"), kn_client_str(j, "by"),
               o.no_rollback ? "the live state is left as it is" : "rolling back");
    }
    json_decref(j);
    return rc;
}

int kn_cmd_rollback(int argc, char **argv)
{
    static const char usage[] = "kanaria rollback APP [--to REV] [--repo NAME] [--json]";
    struct kn_client_opts o;
    json_t *j = NULL;
    char commit[8];
    int rc;

    if (kn_client_args(argc, argv, usage, 1, KN_CLIENT_TO, &o) < 0) {
        return KN_EXIT_USAGE;
    }
    rc = kn_client_action(&o, "/rollback", o.to ? json_pack("{s:s}", "to", o.to) : json_object(),
                          &j);
    if (rc == KN_EXIT_OK && !o.json) {
        kn_client_short(json_string_value(json_object_get(j, "commit")), commit);
        printf("rolling %s back to %s: deployment #%lld (quick sync) as %s\n",
               kn_client_str(j, "app"), commit, kn_client_int(j, "deployment"),
               kn_client_str(j, "by"));
    }
    json_decref(j);
    return rc;
}

int kn_cmd_sync(int argc, char **argv)
{
    static const char usage[] = "kanaria sync APP [--repo NAME] [--json]";
    struct kn_client_opts o;
    json_t *j = NULL;
    char commit[8];
    int rc;

    if (kn_client_args(argc, argv, usage, 1, 0, &o) < 0) {
        return KN_EXIT_USAGE;
    }
    if ((rc = kn_client_action(&o, "/sync", json_object(), &j)) == KN_EXIT_OK && !o.json) {
        kn_client_short(json_string_value(json_object_get(j, "commit")), commit);
        printf("syncing %s to the head %s: deployment #%lld (quick sync) as %s\n",
               kn_client_str(j, "app"), commit, kn_client_int(j, "deployment"),
               kn_client_str(j, "by"));
    }
    json_decref(j);
    return rc;
}

int kn_cmd_skip(int argc, char **argv)
{
    static const char usage[] =
        "kanaria skip APP --stage N [--break-glass --reason TEXT] [--repo NAME] [--json]";
    struct kn_client_opts o;
    json_t *j = NULL, *req;
    int rc;

    if (kn_client_args(argc, argv, usage, 1,
                       KN_CLIENT_STAGE | KN_CLIENT_BREAK_GLASS | KN_CLIENT_REASON, &o) < 0) {
        return KN_EXIT_USAGE;
    }
    /* a reason goes with a break-glass, which needs one */
    if (o.break_glass != (o.reason != NULL)) {
        fprintf(stderr, "kanaria: %s\nusage: %s\n",
                o.break_glass ? "--break-glass needs --reason saying why"
                              : "--reason goes with --break-glass",
                usage);
        return KN_EXIT_USAGE;
    }
    req = json_pack("{s:I}", "stage", (json_int_t)o.stage);
    if (o.break_glass) {
        json_object_set_new(req, "breakGlass", json_true());
        json_object_set_new(req, "reason", json_string(o.reason));
    }
    rc = kn_client_action(&o, "/skip", req, &j);
    if (rc == KN_EXIT_OK && !o.json) {
        printf("skipped stage %lld %s of deployment #%lld of %s as %s%s\n",
               kn_client_int(j, "stage"), kn_client_str(j, "stage_name"),
               kn_client_int(j, "deployment"), kn_client_str(j, "app"), kn_client_str(j, "by"),
               json_is_true(json_object_get(j, "break_glass")) ? " (break-glass)" : "");
    }
    json_decref(j);
    return rc;
}

int kn_cmd_prune(int argc, char **argv)
{
    static const char usage[] = "kanaria prune APP [--repo NAME] [--json]";
    struct kn_client_opts o;
    json_t *j = NULL;
    int rc;

    if (kn_client_args(argc, argv, usage, 1, 0, &o) < 0) {
        return KN_EXIT_USAGE;
    }
    if ((rc = kn_client_action(&o, "/prune", json_object(), &j)) == KN_EXIT_OK && !o.json) {
        printf("pruning %s of repository %s as %s: its instances, frontend and backend are "
               "removed (kanaria status %s shows PRUNED when done)\n",
               kn_client_str(j, "app"), kn_client_str(j, "repo"), kn_client_str(j, "by"),
               kn_client_str(j, "app"));
    }
    json_decref(j);
    return rc;
}

/* One repository: a row of the table, or (detail) one field a line. */
static void kn_client_print_repo(const json_t *r, int detail)
{
    char commit[8], when[32], since[32];
    const char *error = json_string_value(json_object_get(r, "error"));

    error = error ? error : "";
    kn_client_short(json_string_value(json_object_get(r, "head")), commit);
    kn_client_time(json_integer_value(json_object_get(r, "fetched_at")), when, sizeof(when));
    if (!detail) {
        printf("%-16s %-12s %-7s %-16s %-5lld %s\n", kn_client_str(r, "name"),
               kn_client_str(r, "branch"), commit, when,
               (long long)json_integer_value(json_object_get(r, "apps")), *error ? error : "-");
        return;
    }
    printf("repository:       %s\n", kn_client_str(r, "name"));
    printf("url:              %s\n", kn_client_str(r, "url"));
    printf("branch:           %s\n", kn_client_str(r, "branch"));
    printf("head:             %s\n", kn_client_str(r, "head"));
    printf("last fetch:       %s\n", when);
    printf("apps:             %lld\n", (long long)json_integer_value(json_object_get(r, "apps")));
    if (*error) {
        kn_client_time(json_integer_value(json_object_get(r, "failing_since")), since,
                       sizeof(since));
        printf("error:            %s (failing since %s)\n", error, since);
    }
}

int kn_cmd_repos(int argc, char **argv)
{
    static const char usage[] = "kanaria repos [REPO] [--json]";
    struct kn_client_opts o;
    struct kn_client_answer ans = {0};
    json_t *j = NULL, *r;
    char *path = NULL, *name = NULL;
    size_t i;
    int rc;

    if (kn_client_args(argc, argv, usage, 0, 0, &o) < 0) {
        return KN_EXIT_USAGE;
    }
    if (o.app || o.repo) {
        name = kn_client_escape(o.app ? o.app : o.repo);
        path = kn_asprintf("/api/v1/repositories/%s", name);
    } else {
        path = kn_strdup("/api/v1/repositories");
    }
    if (kn_client_call("GET", path, NULL, &ans) < 0) {
        rc = KN_EXIT_FAILED;
        goto out;
    }
    if ((rc = kn_client_check(&ans, &j)) != KN_EXIT_OK) {
        goto out;
    }
    if (o.json) {
        kn_client_print_json(&ans);
    } else if (name) {
        kn_client_print_repo(j, 1);
    } else {
        printf("%-16s %-12s %-7s %-16s %-5s %s\n", "REPO", "BRANCH", "HEAD", "FETCHED", "APPS",
               "ERROR");
        json_array_foreach(json_object_get(j, "repositories"), i, r)
        {
            kn_client_print_repo(r, 0);
        }
    }
out:
    json_decref(j);
    kn_buf_release(&ans.body);
    free(name);
    free(path);
    return rc;
}
