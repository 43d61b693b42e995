/*
 * The client commands: `kanaria status [APP]`, `history APP`, `approve APP`, `reject APP`, and
 * the operator's `cancel APP`, `rollback APP`, `sync APP`, `retry APP`, `skip APP --stage N`,
 * `promote APP --full`, `prune APP`, `postmortem ID` (a failed deployment's draft), and
 * `repos [REPO]` (each repository's fetch status). They
 * call the API of a running `kanaria serve` at KANARIA_ADDR (default http://127.0.0.1:7070) with
 * the token in KANARIA_TOKEN (and, for an https server whose certificate no system CA signed,
 * KANARIA_CACERT: a PEM file to verify it with), and print tables, or the server's JSON with
 * --json.
 */
#include <errno.h>
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
#define KN_CLIENT_EVENTS      0x80 /* --app A, --since T, --type X, --follow, --timeout D */
#define KN_CLIENT_UNTIL_DONE  0x100 /* --until-done */
#define KN_CLIENT_FULL        0x200 /* --full */

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
    const char *filter_app; /* --app */
    const char *type;       /* --type */
    long long since_ms;     /* --since, ms since the epoch; 0: not given */
    int follow;
    int until_done;
    int full;
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

/* What to do about a TLS failure: the server's certificate is checked against the system's CAs,
 * or against KANARIA_CACERT when set. "" for any other failure. */
static const char *kn_client_tls_hint(CURLcode cc, const char *cacert)
{
    switch (cc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
        return cacert && *cacert ? " (the server's certificate is checked against KANARIA_CACERT: "
                                   "is it the PEM file of the CA that signed it?)"
                                 : " (a server whose certificate no system CA signed: set "
                                   "KANARIA_CACERT to the PEM file of its CA)";
    case CURLE_SSL_CACERT_BADFILE:
        return " (KANARIA_CACERT must name a readable PEM file of CA certificates)";
    default:
        return "";
    }
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
        fprintf(stderr, "kanaria: cannot reach %s: %s%s\n", addr,
                errbuf[0] ? errbuf : curl_easy_strerror(cc), kn_client_tls_hint(cc, cacert));
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

static const char *kn_client_running_stage(const json_t *cur, int compact, char *buf,
                                           size_t size);
static const char *kn_client_background(const json_t *cur, char *buf, size_t size);

static void kn_client_print_app_row(const json_t *app)
{
    const json_t *cur = json_object_get(app, "current");
    const json_t *latest = json_object_get(app, "latest");
    const json_t *d = json_is_object(cur) ? cur : latest;
    const json_t *st = json_is_object(cur) ? json_object_get(cur, "running_stage") : NULL;
    const json_t *freeze = json_object_get(json_object_get(app, "freeze"), "active");
    char commit[8], deploy[32], stage[96], frozen[256];
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
        /* with what a WAIT, WAIT_APPROVAL or ANALYSIS waits for: "WAIT_APPROVAL 12m left 0/1" */
        kn_client_running_stage(cur, 1, stage, sizeof(stage));
    }
    /* a break-glass skip shows while it runs, and in the reason once it succeeded */
    if (json_is_object(d)) {
        note = json_string_value(json_object_get(d, "break_glass"));
        if (!note && json_string_value(json_object_get(d, "reason")) &&
            strstr(json_string_value(json_object_get(d, "reason")), "(break-glass)")) {
            note = json_string_value(json_object_get(d, "reason"));
        }
    }
    /* held by a start gate: why and until when */
    if (!note && json_is_object(d) && (strcmp(kn_client_str(d, "status"), "FROZEN") == 0 ||
                                       strcmp(kn_client_str(d, "status"), "BLOCKED") == 0)) {
        note = json_string_value(json_object_get(d, "reason"));
    }
    if (!note && json_is_object(freeze)) {
        snprintf(frozen, sizeof(frozen), "freeze window '%s' open until %s",
                 kn_client_str(freeze, "name"), kn_client_str(freeze, "until_local"));
        note = frozen;
    }
    printf("%-20s %-12s %-8s %-12s %-7s %-38s %s%s%s\n", kn_client_str(app, "name"),
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

/* One line per SLO: its SLI, budget left and burn rates as last read, and how old that is. */
static void kn_client_print_slos(const json_t *slos)
{
    static const char *const windows[] = {"1h", "6h", "3d"};
    long long now = (long long)time(NULL) * 1000;
    size_t i;
    const json_t *s;

    json_array_foreach(slos, i, s)
    {
        const json_t *burn = json_object_get(s, "burn_rates");
        long long at = json_integer_value(json_object_get(s, "read_at"));
        char age[32];
        char label[64];

        snprintf(label, sizeof(label), "slo %s:", kn_client_str(s, "name"));
        snprintf(age, sizeof(age), "%llds ago", at > 0 && now > at ? (now - at) / 1000 : 0);
        if (at <= 0) {
            printf("%-17s no reading yet (objective %g%% over %s)\n", label,
                   json_number_value(json_object_get(s, "objective")), kn_client_str(s, "window"));
            continue;
        }
        if (*kn_client_str(s, "error") && strcmp(kn_client_str(s, "error"), "-") != 0) {
            printf("%-17s cannot be read: %s (%s)\n", label, kn_client_str(s, "error"), age);
            continue;
        }
        printf("%-17s SLI %.3f%% over %s (objective %g%%), budget %.1f%% left, burn", label,
               json_number_value(json_object_get(s, "sli")) * 100, kn_client_str(s, "window"),
               json_number_value(json_object_get(s, "objective")),
               json_number_value(json_object_get(s, "budget_remaining")) * 100);
        for (size_t w = 0; w < sizeof(windows) / sizeof(windows[0]); w++) {
            const json_t *v = json_object_get(burn, windows[w]);
            if (json_is_number(v)) {
                printf("%s %s %.2f", w ? " ·" : "", windows[w], json_number_value(v));
            } else {
                printf("%s %s -", w ? " ·" : "", windows[w]);
            }
        }
        printf(", read %s\n", age);
    }
}

/* The freeze windows of kanaria.yaml that cover the app: the one open now, the next one. */
static void kn_client_print_freeze(const json_t *app)
{
    const json_t *freeze = json_object_get(app, "freeze");
    const json_t *active = json_object_get(freeze, "active");
    const json_t *next = json_object_get(freeze, "next");

    if (json_is_object(active)) {
        printf("freeze:           window '%s' open until %s (deployments wait FROZEN)\n",
               kn_client_str(active, "name"), kn_client_str(active, "until_local"));
    } else {
        printf("freeze:           none open\n");
    }
    if (json_is_object(next)) {
        printf("next freeze:      window '%s' from %s until %s\n", kn_client_str(next, "name"),
               kn_client_str(next, "from_local"), kn_client_str(next, "until_local"));
    }
}

static void kn_client_print_app(const json_t *app)
{
    const json_t *cur = json_object_get(app, "current");
    const json_t *traffic = json_object_get(app, "traffic");
    const char *err = json_string_value(json_object_get(app, "error"));
    char commit[8], wait[256];

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
        if (strcmp(kn_client_str(cur, "status"), "FROZEN") == 0 ||
            strcmp(kn_client_str(cur, "status"), "BLOCKED") == 0) {
            printf("waiting:          %s\n", kn_client_str(cur, "reason"));
        }
        if (json_is_object(st)) {
            printf("running stage:    %s\n", kn_client_running_stage(cur, 0, wait, sizeof(wait)));
        }
        if (*kn_client_background(cur, wait, sizeof(wait))) {
            printf("background:       %s\n", wait);
        }
    } else {
        printf("deploying:        -\n");
    }
    kn_client_print_freeze(app);
    if (json_is_object(traffic)) {
        printf("traffic:          primary %g%% · canary %g%%",
               json_number_value(json_object_get(traffic, "primary")),
               json_number_value(json_object_get(traffic, "canary")));
        if (json_number_value(json_object_get(traffic, "baseline")) > 0) {
            printf(" · baseline %g%%", json_number_value(json_object_get(traffic, "baseline")));
        }
        printf("\n");
    } else if (json_object_get(app, "traffic")) {
        printf("traffic:          unknown: %s\n", kn_client_str(app, "traffic_error"));
    }
    kn_client_print_slos(json_object_get(app, "slos"));
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

/* --since: a duration before now_s ("30m"), or a local time "YYYY-MM-DD[THH:MM[:SS]]" (a space
 * may stand for the T). 0 with *ms since the epoch, or -1. */
static int kn_client_since(const char *s, time_t now_s, long long *ms)
{
    struct tm tm = {0};
    long long ago;
    int n = 0, len = (int)strlen(s);
    char sep = 0;
    time_t t;

    if (kn_duration_parse(s, &ago) == 0 && ago > 0) {
        *ms = (long long)now_s * 1000 - ago;
        return *ms > 0 ? 0 : -1;
    }
    if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3) {
        return -1;
    }
    if (n < len) {
        int m = 0;
        if (sscanf(s + n, "%c%2d:%2d%n", &sep, &tm.tm_hour, &tm.tm_min, &m) != 3 ||
            (sep != 'T' && sep != ' ')) {
            return -1;
        }
        n += m;
        if (n < len && (sscanf(s + n, ":%2d%n", &tm.tm_sec, &m) != 1 || (n += m) != len)) {
            return -1;
        }
    }
    if (n != len || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 1970) {
        return -1;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_isdst = -1;
    if ((t = mktime(&tm)) == (time_t)-1) {
        return -1;
    }
    *ms = (long long)t * 1000;
    return 0;
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
        {"app", required_argument, NULL, 'a'},
        {"since", required_argument, NULL, 'S'},
        {"type", required_argument, NULL, 'y'},
        {"follow", no_argument, NULL, 'f'},
        {"until-done", no_argument, NULL, 'u'},
        {"full", no_argument, NULL, 'F'},
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
            if (!(allowed & (KN_CLIENT_WAIT | KN_CLIENT_EVENTS))) {
                goto usage;
            }
            if (kn_duration_parse(optarg, &o->timeout_ms) < 0 || o->timeout_ms <= 0) {
                fprintf(stderr, "kanaria: --timeout wants a duration such as 90s or 10m, got "
                                "'%s'\n",
                        optarg);
                goto usage;
            }
            break;
        case 'a':
        case 'y':
        case 'f':
            if (!(allowed & KN_CLIENT_EVENTS)) {
                goto usage;
            }
            if (c == 'a') {
                o->filter_app = optarg;
            } else if (c == 'y') {
                o->type = optarg;
            } else {
                o->follow = 1;
            }
            break;
        case 'S':
            if (!(allowed & KN_CLIENT_EVENTS)) {
                goto usage;
            }
            if (kn_client_since(optarg, time(NULL), &o->since_ms) < 0) {
                fprintf(stderr, "kanaria: --since wants a duration ago such as 30m or 2h, or a "
                                "local time YYYY-MM-DD[THH:MM[:SS]], got '%s'\n",
                        optarg);
                goto usage;
            }
            break;
        case 'u':
            if (!(allowed & KN_CLIENT_UNTIL_DONE)) {
                goto usage;
            }
            o->until_done = 1;
            break;
        case 'F':
            if (!(allowed & KN_CLIENT_FULL)) {
                goto usage;
            }
            o->full = 1;
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

/* One status: the table of apps or one app's detail; *busy set when a deployment of what it
 * shows is in progress. */
static int kn_client_status(const struct kn_client_opts *op, int *busy)
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
    *busy = json_is_object(json_object_get(j, "current"));
    json_array_foreach(json_object_get(j, "apps"), i, app)
    {
        *busy |= json_is_object(json_object_get(app, "current"));
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
        printf("%-20s %-12s %-8s %-12s %-7s %-38s %s\n", "APP", "REPO", "DEPLOY", "STATUS",
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
 * until Ctrl-C (which ends the process), like `kubectl get -w`; with --until-done it exits 0 once
 * nothing it shows is deploying (the app's deployment, or every app's, has ended). A failed call
 * is shown and tried again. Exit codes by outcome are `kanaria wait`'s.
 */
int kn_cmd_status(int argc, char **argv)
{
    static const char usage[] =
        "kanaria status [APP] [--repo NAME] [--json] [--watch [--until-done]]";
    struct kn_client_opts o;
    int tty = isatty(STDOUT_FILENO);
    int rc, busy = 0;

    if (kn_client_args(argc, argv, usage, 0, KN_CLIENT_WATCH | KN_CLIENT_UNTIL_DONE, &o) < 0) {
        return KN_EXIT_USAGE;
    }
    if (o.until_done && !o.watch) {
        fprintf(stderr, "kanaria: --until-done goes with --watch\nusage: %s\n", usage);
        return KN_EXIT_USAGE;
    }
    if (!o.watch) {
        return kn_client_status(&o, &busy);
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
        busy = 1;
        rc = kn_client_status(&o, &busy);
        if (rc == KN_EXIT_USAGE || (o.until_done && rc == KN_EXIT_OK && !busy)) {
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
/* POST `req` (reference stolen) to the API path `path`: kn_client_action's work for any path. */
static int kn_client_post(const struct kn_client_opts *o, const char *path, json_t *req,
                          json_t **out)
{
    struct kn_client_answer ans = {0};
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
    return rc;
}

static int kn_client_action(const struct kn_client_opts *o, const char *suffix, json_t *req,
                            json_t **out)
{
    char *path = kn_client_app_path(o, suffix);
    int rc = kn_client_post(o, path, req, out);

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

/* An action that plans the app again (sync, retry): POST `path`, then `print` the reply with
 * the short commit. */
static int kn_client_replan(int argc, char **argv, const char *usage, const char *path,
                            void (*print)(const json_t *j, const char *commit))
{
    struct kn_client_opts o;
    json_t *j = NULL;
    char commit[8];
    int rc;

    if (kn_client_args(argc, argv, usage, 1, 0, &o) < 0) {
        return KN_EXIT_USAGE;
    }
    if ((rc = kn_client_action(&o, path, json_object(), &j)) == KN_EXIT_OK && !o.json) {
        kn_client_short(json_string_value(json_object_get(j, "commit")), commit);
        print(j, commit);
    }
    json_decref(j);
    return rc;
}

static void kn_client_synced(const json_t *j, const char *commit)
{
    printf("syncing %s to the head %s: deployment #%lld (quick sync) as %s\n",
           kn_client_str(j, "app"), commit, kn_client_int(j, "deployment"),
           kn_client_str(j, "by"));
}

int kn_cmd_sync(int argc, char **argv)
{
    return kn_client_replan(argc, argv, "kanaria sync APP [--repo NAME] [--json]", "/sync",
                            kn_client_synced);
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

static void kn_client_retried(const json_t *j, const char *commit)
{
    printf("retrying %s at %s: deployment #%lld as %s\n", kn_client_str(j, "app"), commit,
           kn_client_int(j, "deployment"), kn_client_str(j, "by"));
}

int kn_cmd_retry(int argc, char **argv)
{
    return kn_client_replan(argc, argv, "kanaria retry APP [--repo NAME] [--json]", "/retry",
                            kn_client_retried);
}

int kn_cmd_promote(int argc, char **argv)
{
    static const char usage[] = "kanaria promote APP --full [--repo NAME] [--json]";
    struct kn_client_opts o;
    struct kn_client_answer ans = {0};
    json_t *j = NULL;
    char *path = NULL;
    long long id;
    int rc;

    if (kn_client_args(argc, argv, usage, 1, KN_CLIENT_FULL, &o) < 0) {
        return KN_EXIT_USAGE;
    }
    if (!o.full) {
        fprintf(stderr, "kanaria: promote needs --full (skip every stage up to the "
                        "PRIMARY_ROLLOUT; kanaria skip passes one stage)\nusage: %s\n",
                usage);
        return KN_EXIT_USAGE;
    }
    /* the app's deployment in progress */
    path = kn_client_app_path(&o, "");
    if (kn_client_call("GET", path, NULL, &ans) < 0) {
        rc = KN_EXIT_FAILED;
        goto out;
    }
    if ((rc = kn_client_check(&ans, &j)) != KN_EXIT_OK) {
        goto out;
    }
    id = json_integer_value(json_object_get(json_object_get(j, "current"), "id"));
    json_decref(j);
    if (id <= 0) {
        fprintf(stderr, "kanaria: no deployment of '%s' is in progress\n", o.app);
        rc = KN_EXIT_FAILED;
        j = NULL;
        goto out;
    }
    free(path);
    path = kn_asprintf("/api/v1/deployments/%lld/promote", id);
    rc = kn_client_post(&o, path, json_pack("{s:b}", "full", 1), &j);
    if (rc == KN_EXIT_OK && !o.json) {
        printf("promoting deployment #%lld of %s in full as %s: every stage up to the "
               "PRIMARY_ROLLOUT is skipped\n",
               kn_client_int(j, "deployment"), kn_client_str(j, "app"), kn_client_str(j, "by"));
    }
out:
    json_decref(j);
    kn_buf_release(&ans.body);
    free(path);
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

/* ---- kanaria events ---------------------------------------------------------------------------- */

/* The largest line of the event stream the client takes (an event's JSON is far smaller). */
#define KN_CLIENT_STREAM_LINE_MAX (1024 * 1024)

struct kn_client_events {
    const struct kn_client_opts *o;
    struct kn_buf line; /* the stream's line being read */
    long long last_id;  /* the newest event seen */
    int header;         /* the table's header was printed */
};

/* Whether the event (an object of the API's shape) passes the command's filters: the stream
 * sends every event, the audit route filters on the server. */
static int kn_client_event_matches(const struct kn_client_opts *o, const json_t *e)
{
    return (!o->filter_app || strcmp(kn_client_str(e, "app"), o->filter_app) == 0) &&
           (!o->repo || strcmp(kn_client_str(e, "repo"), o->repo) == 0) &&
           (!o->type || strcmp(kn_client_str(e, "type"), o->type) == 0) &&
           json_integer_value(json_object_get(e, "at")) >= o->since_ms;
}

/* One event: a line of JSON with --json (the stream's `data:`), else a row of the table. */
static void kn_client_print_event(struct kn_client_events *x, const json_t *e)
{
    char when[32], deploy[24] = "-";
    char *text;

    if (x->o->json) {
        if ((text = json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER)) != NULL) {
            printf("%s\n", text);
            free(text);
        }
        return;
    }
    if (!x->header) {
        printf("%-7s %-19s %-16s %-16s %-7s %-12s %s\n", "ID", "TIME", "TYPE", "APP", "DEPLOY",
               "ACTOR", "MESSAGE");
        x->header = 1;
    }
    if (json_integer_value(json_object_get(e, "deployment")) > 0) {
        snprintf(deploy, sizeof(deploy), "#%lld",
                 (long long)json_integer_value(json_object_get(e, "deployment")));
    }
    printf("%-7lld %-19s %-16s %-16s %-7s %-12s %s\n",
           (long long)json_integer_value(json_object_get(e, "id")),
           kn_client_time(json_integer_value(json_object_get(e, "at")), when, sizeof(when)),
           kn_client_str(e, "type"), kn_client_str(e, "app"), deploy, kn_client_str(e, "actor"),
           kn_client_str(e, "message"));
}

/* The audit log from the start (or --since), a page of 1000 at a time. */
static int kn_client_events_pages(struct kn_client_events *x)
{
    const struct kn_client_opts *o = x->o;
    long long after = 0;
    int rc = KN_EXIT_OK;

    for (;;) {
        struct kn_client_answer ans = {0};
        struct kn_buf path;
        json_t *j = NULL, *e;
        size_t i;
        int more;

        kn_buf_init(&path, KN_BUF_UNBOUNDED);
        kn_buf_addf(&path, "/api/v1/audit?after=%lld&limit=1000", after);
        if (o->since_ms) {
            kn_buf_addf(&path, "&since=%lld", o->since_ms);
        }
        const char *names[] = {"app", "type", "repo"};
        const char *values[] = {o->filter_app, o->type, o->repo};
        for (i = 0; i < 3; i++) {
            if (values[i]) {
                char *v = kn_client_escape(values[i]);
                kn_buf_addf(&path, "&%s=%s", names[i], v);
                free(v);
            }
        }
        kn_buf_addch(&path, '\0');
        if (kn_client_call("GET", path.data, NULL, &ans) < 0) {
            rc = KN_EXIT_FAILED;
        } else {
            rc = kn_client_check(&ans, &j);
        }
        kn_buf_release(&path);
        kn_buf_release(&ans.body);
        if (rc != KN_EXIT_OK) {
            return rc;
        }
        json_array_foreach(json_object_get(j, "events"), i, e)
        {
            kn_client_print_event(x, e);
        }
        after = json_integer_value(json_object_get(j, "next"));
        more = json_is_true(json_object_get(j, "more"));
        /* the stream goes on after the newest event, not after the newest one shown */
        x->last_id = json_integer_value(json_object_get(j, "last_event_id"));
        if (after > x->last_id) {
            x->last_id = after;
        }
        json_decref(j);
        if (!more) {
            return KN_EXIT_OK;
        }
    }
}

/* A line of the event stream: `data: {...}` is an event, `id:`, comments and blanks are not. */
static void kn_client_stream_line(struct kn_client_events *x, const char *line)
{
    json_t *e;

    if (strncmp(line, "data: ", 6) != 0 || !(e = json_loads(line + 6, 0, NULL))) {
        return;
    }
    if (json_integer_value(json_object_get(e, "id")) > x->last_id) {
        x->last_id = json_integer_value(json_object_get(e, "id"));
        if (kn_client_event_matches(x->o, e)) {
            kn_client_print_event(x, e);
            fflush(stdout);
        }
    }
    json_decref(e);
}

static size_t kn_client_stream_write(char *ptr, size_t size, size_t n, void *data)
{
    struct kn_client_events *x = data;

    for (size_t i = 0; i < size * n; i++) {
        if (ptr[i] != '\n') {
            if (kn_buf_addch(&x->line, ptr[i]) < 0) {
                return 0; /* a line past the bound: not kanaria's stream */
            }
            continue;
        }
        kn_buf_addch(&x->line, '\0');
        kn_client_stream_line(x, x->line.data);
        kn_buf_reset(&x->line);
    }
    return size * n;
}

/* `events --follow`: how long it tries to get the stream back after it drops unless told
 * (--timeout), and the longest pause between two tries (1 s, 2 s, 4 s ... up to this). */
#define KN_CLIENT_RECONNECT_DEFAULT_MS (60LL * 1000)
#define KN_CLIENT_RECONNECT_MAX_PAUSE_MS 8000LL

/* Milliseconds of CLOCK_MONOTONIC. */
static long long kn_client_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One connection to GET /api/v1/events from x->last_id (sent as Last-Event-ID), printing its
 * events until it ends: *status is the HTTP status (0 when none came), *reason what ended it
 * (caller frees). A stream silent for 60 s (the server sends a keep-alive every 15 s) is taken
 * for lost. */
static void kn_client_events_stream(struct kn_client_events *x, long *status, char **reason)
{
    const char *addr = getenv("KANARIA_ADDR");
    const char *token = getenv("KANARIA_TOKEN");
    const char *cacert = getenv("KANARIA_CACERT");
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    char *url = NULL, *auth = NULL, *last = NULL;
    CURL *curl = NULL;
    CURLcode cc;
    size_t alen;

    *status = 0;
    *reason = NULL;
    kn_buf_reset(&x->line);

    addr = addr && *addr ? addr : KN_CLIENT_DEFAULT_ADDR;
    for (alen = strlen(addr); alen > 0 && addr[alen - 1] == '/'; alen--) {
    }
    url = kn_asprintf("%.*s/api/v1/events", (int)alen, addr);
    if (!(curl = curl_easy_init())) {
        *reason = kn_strdup("cannot start libcurl");
        goto out;
    }
    if (token && *token) {
        auth = kn_asprintf("Authorization: Bearer %s", token);
        headers = curl_slist_append(headers, auth);
    }
    last = kn_asprintf("Last-Event-ID: %lld", x->last_id);
    headers = curl_slist_append(headers, "Accept: text/event-stream");
    headers = curl_slist_append(headers, last);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, kn_client_stream_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, (long)KN_CLIENT_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    if (cacert && *cacert) {
        curl_easy_setopt(curl, CURLOPT_CAINFO, cacert);
    }
    cc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    if (cc != CURLE_OK) {
        *reason = kn_asprintf("the event stream of %s: %s%s", addr,
                              errbuf[0] ? errbuf : curl_easy_strerror(cc),
                              kn_client_tls_hint(cc, cacert));
    } else {
        *reason = kn_asprintf("%s ended the event stream", addr);
    }
out:
    curl_slist_free_all(headers);
    if (curl) {
        curl_easy_cleanup(curl);
    }
    free(last);
    free(auth);
    free(url);
}

/* Follow the event stream from x->last_id. When it drops (kanaria restarted, the network), it
 * is asked again from the newest event seen, so nothing is missed nor shown twice, after 1 s,
 * 2 s, 4 s ... (at most KN_CLIENT_RECONNECT_MAX_PAUSE_MS); a stream that answered starts the
 * pauses over. KN_EXIT_FAILED, with the reason, once no stream answered for --timeout (default
 * 1m), or at once on a 4xx (a token or role that a retry does not mend). */
static int kn_client_events_follow(struct kn_client_events *x)
{
    long long window = x->o->timeout_ms > 0 ? x->o->timeout_ms : KN_CLIENT_RECONNECT_DEFAULT_MS;
    long long since = kn_client_mono_ms(); /* when the last stream that answered ended */
    long long pause = 1000;
    struct timespec ts;
    char shown[32];
    char *reason = NULL;
    long status = 0;
    int rc = KN_EXIT_FAILED;

    for (;;) {
        free(reason);
        kn_client_events_stream(x, &status, &reason);
        fflush(stdout);
        if (status >= 400 && status < 500) {
            break;
        }
        if (status == 200) {
            since = kn_client_mono_ms();
            pause = 1000;
        }
        if (kn_client_mono_ms() - since + pause > window) {
            kn_duration_format(window, shown, sizeof(shown));
            fprintf(stderr, "kanaria: %s; gave up reconnecting after %s (--timeout)\n", reason,
                    shown);
            goto out;
        }
        kn_duration_format(pause, shown, sizeof(shown));
        fprintf(stderr, "kanaria: %s; reconnecting in %s\n", reason, shown);
        ts.tv_sec = pause / 1000;
        ts.tv_nsec = (pause % 1000) * 1000000;
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
        }
        pause = pause * 2 > KN_CLIENT_RECONNECT_MAX_PAUSE_MS ? KN_CLIENT_RECONNECT_MAX_PAUSE_MS
                                                              : pause * 2;
    }
    fprintf(stderr, "kanaria: %s\n", reason);
out:
    free(reason);
    return rc;
}

/*
 * `kanaria events [--app A] [--repo R] [--since T] [--type X] [--follow] [--json]`: the audit
 * log, oldest first, read a page at a time from GET /api/v1/audit; with --follow it then goes on
 * with the event stream from the newest event, until Ctrl-C or the server ends it (exit 1).
 * --json prints each event as one line of JSON, the shape of the stream's `data:`.
 */
int kn_cmd_events(int argc, char **argv)
{
    static const char usage[] = "kanaria events [--app APP] [--repo NAME] [--since T] "
                                "[--type TYPE] [--follow] [--timeout D] [--json]";
    struct kn_client_events x = {0};
    struct kn_client_opts o;
    int rc;

    if (kn_client_args(argc, argv, usage, 0, KN_CLIENT_EVENTS, &o) < 0 || o.app) {
        if (o.app) {
            fprintf(stderr, "usage: %s\n", usage);
        }
        return KN_EXIT_USAGE;
    }
    x.o = &o;
    kn_buf_init(&x.line, KN_CLIENT_STREAM_LINE_MAX);
    if ((rc = kn_client_events_pages(&x)) == KN_EXIT_OK && o.follow) {
        fflush(stdout);
        rc = kn_client_events_follow(&x);
    }
    kn_buf_release(&x.line);
    return rc;
}

/* ---- kanaria get deployment ------------------------------------------------------------------- */

/* "1h2m", "3m20s", "45s" (ms rounded down to seconds; "0s" for less). */
static const char *kn_client_span(long long ms, char *buf, size_t size)
{
    long long s = ms > 0 ? ms / 1000 : 0;

    if (s >= 3600) {
        snprintf(buf, size, "%lldh%lldm", s / 3600, s / 60 % 60);
    } else if (s >= 60) {
        snprintf(buf, size, "%lldm%llds", s / 60, s % 60);
    } else {
        snprintf(buf, size, "%llds", s);
    }
    return buf;
}

static long long kn_client_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The entry of the deployment's `pipeline` for the stage of `index`, or NULL. */
static const json_t *kn_client_pipeline_stage(const json_t *pipeline, long long index)
{
    const json_t *p;
    size_t i;

    json_array_foreach(pipeline, i, p)
    {
        if (json_integer_value(json_object_get(p, "index")) == index) {
            return p;
        }
    }
    return NULL;
}

/* "ANALYSIS (canary-check)" when the stage has an id, else its kind. */
static const char *kn_client_stage_label(const json_t *stage, const json_t *spec, char *buf,
                                         size_t size)
{
    const char *id = json_string_value(json_object_get(spec, "id"));

    if (!id || !*id) {
        id = json_string_value(json_object_get(stage, "id"));
    }
    if (id && *id) {
        snprintf(buf, size, "%s (%s)", kn_client_str(stage, "name"), id);
    } else {
        snprintf(buf, size, "%s", kn_client_str(stage, "name"));
    }
    return buf;
}

/* A background analysis's span (its pipeline entry `spec`: "starting_stage", "until") in words:
 * "from stage 1 TRAFFIC_ROUTING until stage 3 PRIMARY_ROLLOUT starts", into buf. */
static const char *kn_client_background_span(const json_t *pipeline, const json_t *spec,
                                             char *buf, size_t size)
{
    long long from = json_integer_value(json_object_get(spec, "starting_stage"));
    long long until = json_integer_value(json_object_get(spec, "until"));
    const json_t *a = kn_client_pipeline_stage(pipeline, from);
    const json_t *b = kn_client_pipeline_stage(pipeline, until);

    if (b) {
        snprintf(buf, size, "from stage %lld %s until stage %lld %s starts", from,
                 kn_client_str(a, "kind"), until, kn_client_str(b, "kind"));
    } else {
        snprintf(buf, size, "from stage %lld %s until the pipeline ends", from,
                 kn_client_str(a, "kind"));
    }
    return buf;
}

/* What a running stage waits for, in words ("1m20s left, 1 of 2 approvals (alice, bob)"), into
 * buf; "" when it waits for nothing with an end. */
static const char *kn_client_stage_wait(const json_t *stage, const json_t *spec, long long now,
                                        int compact, char *buf, size_t size)
{
    const char *kind = kn_client_str(stage, "name");
    long long started = json_integer_value(json_object_get(stage, "started_at"));
    long long limit = 0, approved = 0;
    int approval = strcmp(kind, "WAIT_APPROVAL") == 0;
    const json_t *a;
    char span[32];
    size_t i, n = 0;

    buf[0] = '\0';
    if (strcmp(kn_client_str(stage, "status"), "RUNNING") != 0 || !spec) {
        return buf;
    }
    if (strcmp(kind, "CANARY_STEPS") == 0) {
        const json_t *steps = json_object_get(spec, "steps");
        long long step = json_integer_value(json_object_get(stage, "step"));
        if (step >= 1 && (size_t)step <= json_array_size(steps)) {
            snprintf(buf, size, "step %lld of %zu: canary %g%%%s", step, json_array_size(steps),
                     json_number_value(json_array_get(steps, (size_t)step - 1)),
                     json_is_true(json_object_get(stage, "awaiting_approval"))
                         ? ", paused until approved (kanaria approve)"
                         : "");
        }
        return buf;
    }
    if (strcmp(kind, "WAIT") == 0 || strcmp(kind, "ANALYSIS") == 0) {
        limit = json_integer_value(json_object_get(spec, "duration_ms"));
    } else if (approval) {
        limit = json_integer_value(json_object_get(spec, "timeout_ms"));
    }
    if (limit > 0 && started > 0) {
        long long left = started + limit - now;
        n += (size_t)snprintf(buf + n, size - n, "%s left",
                              kn_client_span(left > 0 ? left : 0, span, sizeof(span)));
    }
    if (approval && n < size) {
        const json_t *who = json_object_get(spec, "approvers");
        long long need = json_integer_value(json_object_get(spec, "min_approvals"));
        json_array_foreach(json_object_get(stage, "approvals"), i, a)
        {
            approved += strcmp(kn_client_str(a, "decision"), "APPROVE") == 0;
        }
        n += (size_t)snprintf(buf + n, size - n, compact ? "%s%lld/%lld" : "%s%lld of %lld approvals",
                              n ? (compact ? " " : ", ") : "", approved, need > 0 ? need : 1);
        if (compact) {
            return buf;
        }
        json_array_foreach(who, i, a)
        {
            if (n < size) {
                n += (size_t)snprintf(buf + n, size - n, "%s%s", i == 0 ? " (" : ", ",
                                      json_string_value(a) ? json_string_value(a) : "");
            }
        }
        if (json_array_size(who) > 0 && n < size) {
            snprintf(buf + n, size - n, ")");
        }
    }
    return buf;
}

/* A JSON value on one line ("-" for none), printed. */
static void kn_client_print_value(const char *prefix, const json_t *v)
{
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

    printf("%s%s", prefix, text ? text : "-");
    free(text);
}

static void kn_client_print_plan(const json_t *plan)
{
    const json_t *r, *f;
    size_t i, k;

    printf("plan:        %s\n", json_is_object(plan) ? kn_client_str(plan, "summary") : "-");
    json_array_foreach(json_object_get(plan, "diff"), i, r)
    {
        printf("  %s %s %s\n", kn_client_str(r, "op"), kn_client_str(r, "kind"),
               kn_client_str(r, "name"));
        json_array_foreach(json_object_get(r, "fields"), k, f)
        {
            printf("      %s: ", kn_client_str(f, "path"));
            kn_client_print_value("", json_object_get(f, "old"));
            kn_client_print_value(" -> ", json_object_get(f, "new"));
            printf("\n");
        }
    }
}

static void kn_client_print_stage(const json_t *st, const json_t *pipeline, long long now)
{
    long long index = json_integer_value(json_object_get(st, "index"));
    long long started = json_integer_value(json_object_get(st, "started_at"));
    long long finished = json_integer_value(json_object_get(st, "finished_at"));
    const json_t *spec = kn_client_pipeline_stage(pipeline, index), *a, *v;
    char label[160], t0[32], t1[32], span[32], wait[256];
    const char *reason = json_string_value(json_object_get(st, "reason"));
    const char *key;
    size_t i;

    printf("  %-3lld %-32s %-11s", index, kn_client_stage_label(st, spec, label, sizeof(label)),
           kn_client_str(st, "status"));
    if (started > 0) {
        printf(" %s", kn_client_time(started, t0, sizeof(t0)));
        if (finished > 0) {
            printf(" -> %s (%s)", kn_client_time(finished, t1, sizeof(t1)),
                   kn_client_span(finished - started, span, sizeof(span)));
        } else {
            printf(" (%s so far)", kn_client_span(now - started, span, sizeof(span)));
        }
    }
    if (*kn_client_stage_wait(st, spec, now, 0, wait, sizeof(wait))) {
        printf(", %s", wait);
    }
    printf("\n");
    if (json_is_true(json_object_get(spec, "background"))) {
        printf("        background analysis, %s\n",
               kn_client_background_span(pipeline, spec, wait, sizeof(wait)));
    }
    if (reason && *reason) {
        printf("        reason: %s\n", reason);
    }
    json_array_foreach(json_object_get(st, "approvals"), i, a)
    {
        printf("        %s by %s at %s\n",
               strcmp(kn_client_str(a, "decision"), "APPROVE") == 0 ? "approved" : "rejected",
               kn_client_str(a, "who"),
               kn_client_time(json_integer_value(json_object_get(a, "at")), t0, sizeof(t0)));
    }
    json_array_foreach(json_object_get(st, "analysis"), i, a)
    {
        printf("        %s %s %s: %s", kn_client_time(json_integer_value(json_object_get(a, "at")),
                                                      t0, sizeof(t0)),
               kn_client_str(a, "check"), kn_client_str(a, "verdict"), kn_client_str(a, "bound"));
        json_object_foreach((json_t *)json_object_get(a, "values"), key, v)
        {
            printf("; %s ", key);
            kn_client_print_value("", v);
        }
        printf("\n");
    }
}

static void kn_client_print_deployment(const json_t *d)
{
    const json_t *pipeline = json_object_get(d, "pipeline"), *st, *e;
    const char *reason = json_string_value(json_object_get(d, "reason"));
    long long now = kn_client_now_ms();
    char t0[32], t1[32], t2[32];
    size_t i;

    printf("deployment:  #%lld of %s (repository %s)\n", kn_client_int(d, "id"),
           kn_client_str(d, "app"), kn_client_str(d, "repo"));
    printf("commit:      %.12s by %s: %s\n", kn_client_str(d, "commit"), kn_client_str(d, "author"),
           kn_client_str(d, "message"));
    printf("strategy:    %s (%s)\n", kn_client_str(d, "strategy"), kn_client_str(d, "trigger"));
    printf("status:      %s%s%s\n", kn_client_str(d, "status"), reason && *reason ? ": " : "",
           reason && *reason ? reason : "");
    printf("times:       created %s, started %s, finished %s\n",
           kn_client_time(kn_client_int(d, "created_at"), t0, sizeof(t0)),
           kn_client_time(kn_client_int(d, "started_at"), t1, sizeof(t1)),
           kn_client_time(kn_client_int(d, "finished_at"), t2, sizeof(t2)));
    kn_client_print_plan(json_object_get(d, "plan"));
    printf("stages:\n");
    json_array_foreach(json_object_get(d, "stages"), i, st)
    {
        kn_client_print_stage(st, pipeline, now);
    }
    printf("log:\n");
    json_array_foreach(json_object_get(d, "events"), i, e)
    {
        printf("  %s %-16s %s\n",
               kn_client_time(json_integer_value(json_object_get(e, "at")), t0, sizeof(t0)),
               kn_client_str(e, "type"), kn_client_str(e, "message"));
    }
}

/*
 * `kanaria get deployment ID [--json]`: one deployment whole — its plan and diff, every stage
 * with its status, times, what it waits for, approvals and analysis evaluations, and its log.
 */
/* A deployment ID argument: 0, or -1 after saying what is wrong and the usage. */
static int kn_client_deployment_id(const char *arg, const char *usage, long long *id)
{
    char *end = NULL;

    *id = strtoll(arg, &end, 10);
    if (end == arg || *end || *id <= 0) {
        fprintf(stderr, "kanaria: a deployment ID is a number such as 42, got '%s'\nusage: %s\n",
                arg, usage);
        return -1;
    }
    return 0;
}

int kn_cmd_get(int argc, char **argv)
{
    static const char usage[] = "kanaria get deployment ID [--json]";
    struct kn_client_answer ans = {0};
    struct kn_client_opts o;
    json_t *j = NULL;
    char *path = NULL;
    long long id;
    int rc;

    if (argc < 2 || (strcmp(argv[1], "deployment") != 0 && strcmp(argv[1], "deployments") != 0 &&
                     strcmp(argv[1], "deploy") != 0)) {
        fprintf(stderr, "kanaria: get knows one resource, deployment\nusage: %s\n", usage);
        return KN_EXIT_USAGE;
    }
    if (kn_client_args(argc - 1, argv + 1, usage, 1, 0, &o) < 0 || o.repo) {
        if (o.repo) {
            fprintf(stderr, "usage: %s\n", usage);
        }
        return KN_EXIT_USAGE;
    }
    if (kn_client_deployment_id(o.app, usage, &id) < 0) {
        return KN_EXIT_USAGE;
    }
    path = kn_asprintf("/api/v1/deployments/%lld", id);
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
        kn_client_print_deployment(j);
    }
out:
    json_decref(j);
    kn_buf_release(&ans.body);
    free(path);
    return rc;
}

int kn_cmd_postmortem(int argc, char **argv)
{
    static const char usage[] = "kanaria postmortem ID [--json]";
    struct kn_client_answer ans = {0};
    struct kn_client_opts o;
    json_t *j = NULL;
    char *path = NULL;
    long long id;
    int rc;

    if (kn_client_args(argc, argv, usage, 1, 0, &o) < 0 || o.repo) {
        if (o.repo) {
            fprintf(stderr, "usage: %s\n", usage);
        }
        return KN_EXIT_USAGE;
    }
    if (kn_client_deployment_id(o.app, usage, &id) < 0) {
        return KN_EXIT_USAGE;
    }
    path = kn_asprintf("/api/v1/deployments/%lld/postmortem?format=%s", id,
                       o.json ? "json" : "markdown");
    if (kn_client_call("GET", path, NULL, &ans) < 0) {
        rc = KN_EXIT_FAILED;
        goto out;
    }
    if (ans.status < 200 || ans.status > 299 || o.json) {
        /* the error, or the JSON checked before it is printed */
        if ((rc = kn_client_check(&ans, &j)) != KN_EXIT_OK) {
            goto out;
        }
    }
    rc = KN_EXIT_OK;
    kn_client_print_json(&ans); /* the Markdown, or the JSON, as the server wrote it */
out:
    json_decref(j);
    kn_buf_release(&ans.body);
    free(path);
    return rc;
}

/* The running stage of the deployment `cur` (an app's `current`): its kind, its id, and what it
 * waits for, from the deployment's pipeline (one more call); only the kind when that fails. */
static const char *kn_client_running_stage(const json_t *cur, int compact, char *buf, size_t size)
{
    const json_t *run = json_object_get(cur, "running_stage"), *st, *spec;
    struct kn_client_answer ans = {0};
    char *path = kn_asprintf("/api/v1/deployments/%lld", kn_client_int(cur, "id"));
    char label[160], wait[256], *text;
    const char *id;
    json_t *d = NULL;
    size_t i, len;

    /* "KIND (id)" as the stage label says, should the deployment's call fail */
    id = json_string_value(json_object_get(run, "id"));
    snprintf(buf, size, "%s%s%s%s", kn_client_str(run, "name"), id && *id ? " (" : "",
             id && *id ? id : "", id && *id ? ")" : "");
    if (kn_client_call("GET", path, NULL, &ans) < 0 || ans.status != 200 ||
        !(d = json_loads(ans.body.data, 0, NULL))) {
        goto out;
    }
    json_array_foreach(json_object_get(d, "stages"), i, st)
    {
        if (json_integer_value(json_object_get(st, "index")) != kn_client_int(run, "index")) {
            continue;
        }
        spec = kn_client_pipeline_stage(json_object_get(d, "pipeline"), kn_client_int(run, "index"));
        kn_client_stage_label(st, spec, label, sizeof(label));
        kn_client_stage_wait(st, spec, kn_client_now_ms(), compact, wait, sizeof(wait));
        text = kn_asprintf("%s%s%s", label, *wait ? (compact ? " " : ": ") : "", wait);
        len = strlen(text) < size ? strlen(text) : size - 1; /* cut at the buffer's size */
        memcpy(buf, text, len);
        buf[len] = '\0';
        free(text);
        break;
    }
out:
    json_decref(d);
    kn_buf_release(&ans.body);
    free(path);
    return buf;
}

/* The background analysis of the deployment `cur` (an app's `current`) in words, from the
 * deployment (one more call): "ANALYSIS (background) RUNNING, from stage 1 TRAFFIC_ROUTING
 * until stage 3 PRIMARY_ROLLOUT starts, 4 evaluations, 0 failed"; "" when it has none. */
static const char *kn_client_background(const json_t *cur, char *buf, size_t size)
{
    struct kn_client_answer ans = {0};
    char *path = kn_asprintf("/api/v1/deployments/%lld", kn_client_int(cur, "id"));
    char span[256];
    const json_t *st, *a;
    json_t *d = NULL;
    size_t i, k, failed = 0;

    buf[0] = '\0';
    if (kn_client_call("GET", path, NULL, &ans) < 0 || ans.status != 200 ||
        !(d = json_loads(ans.body.data, 0, NULL))) {
        goto out;
    }
    json_array_foreach(json_object_get(d, "stages"), i, st)
    {
        const json_t *spec = kn_client_pipeline_stage(json_object_get(d, "pipeline"),
                                                      kn_client_int(st, "index"));
        if (!json_is_true(json_object_get(spec, "background"))) {
            continue;
        }
        json_array_foreach(json_object_get(st, "analysis"), k, a)
        {
            failed += strcmp(kn_client_str(a, "verdict"), "FAIL") == 0;
        }
        snprintf(buf, size, "%s (%s) %s, %s, %zu evaluations, %zu failed",
                 kn_client_str(st, "name"), kn_client_str(spec, "id"),
                 kn_client_str(st, "status"),
                 kn_client_background_span(json_object_get(d, "pipeline"), spec, span,
                                           sizeof(span)),
                 json_array_size(json_object_get(st, "analysis")), failed);
        break;
    }
out:
    json_decref(d);
    kn_buf_release(&ans.body);
    free(path);
    return buf;
}
