/*
 * kanaria_load — steady traffic for the quickstart, so that the canary's analysis has real
 * requests to measure.
 *
 *     kanaria_load [--rate N] [--seconds S] URL
 *
 * Sends N GET requests a second (default 40) to URL, one after another on a kept-alive
 * connection, for S seconds (default: until SIGINT or SIGTERM). Once a second it prints what the
 * answers were in that second, by the X-Version header of the successful ones:
 *
 *     12:00:01 40 requests: v1 28, v2 12
 *     12:00:02 40 requests: v1 27, v3 9, errors 4
 *
 * A request that takes longer than one second or fails counts as an error; a slow answer delays
 * the next requests rather than sending them in a burst.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define KN_LOAD_VERSIONS    16
#define KN_LOAD_VERSION_MAX 64

struct kn_load_tally {
    char version[KN_LOAD_VERSIONS][KN_LOAD_VERSION_MAX];
    long count[KN_LOAD_VERSIONS];
    int versions;
    long requests;
    long errors;
};

/* The X-Version header of the answer being read. */
struct kn_load_answer {
    char version[KN_LOAD_VERSION_MAX];
};

static volatile sig_atomic_t kn_load_stop;

static void kn_load_on_signal(int signum)
{
    (void)signum;
    kn_load_stop = 1;
}

static double kn_load_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void kn_load_sleep_until(double t)
{
    double d = t - kn_load_now();
    struct timespec ts;

    if (d <= 0) {
        return;
    }
    ts.tv_sec = (time_t)d;
    ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
}

static size_t kn_load_header(char *buf, size_t size, size_t n, void *data)
{
    struct kn_load_answer *a = data;
    size_t len = size * n;
    const char name[] = "X-Version:";

    if (len > sizeof(name) - 1 && strncasecmp(buf, name, sizeof(name) - 1) == 0) {
        size_t start = sizeof(name) - 1;
        while (start < len && (buf[start] == ' ' || buf[start] == '\t')) {
            start++;
        }
        size_t end = len;
        while (end > start &&
               (buf[end - 1] == '\r' || buf[end - 1] == '\n' || buf[end - 1] == ' ')) {
            end--;
        }
        snprintf(a->version, sizeof(a->version), "%.*s", (int)(end - start), buf + start);
    }
    return len;
}

static size_t kn_load_discard(char *buf, size_t size, size_t n, void *data)
{
    (void)buf;
    (void)data;
    return size * n;
}

static void kn_load_count(struct kn_load_tally *t, const char *version)
{
    int i;

    t->requests++;
    if (!version) {
        t->errors++;
        return;
    }
    for (i = 0; i < t->versions; i++) {
        if (strcmp(t->version[i], version) == 0) {
            break;
        }
    }
    if (i == t->versions) {
        if (t->versions == KN_LOAD_VERSIONS) {
            return;
        }
        snprintf(t->version[i], sizeof(t->version[i]), "%s", version);
        t->count[i] = 0;
        t->versions++;
    }
    t->count[i]++;
}

static void kn_load_report(struct kn_load_tally *t)
{
    char stamp[16];
    time_t now = time(NULL);
    struct tm tm;

    localtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
    printf("%s %ld requests:", stamp, t->requests);
    for (int i = 0; i < t->versions; i++) {
        printf("%s %s %ld", i ? "," : "", t->version[i], t->count[i]);
    }
    if (t->errors) {
        printf("%s errors %ld", t->versions ? "," : "", t->errors);
    }
    printf("\n");
    fflush(stdout);
    memset(t, 0, sizeof(*t));
}

static int kn_load_usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--rate N] [--seconds S] URL\n", argv0);
    return 2;
}

int main(int argc, char **argv)
{
    const char *url = NULL;
    double rate = 40;
    double seconds = 0;
    struct kn_load_tally tally;
    struct kn_load_answer answer;
    struct sigaction sa;
    CURL *curl = NULL;
    int rc = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc) {
            rate = atof(argv[++i]);
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (argv[i][0] != '-' && !url) {
            url = argv[i];
        } else {
            return kn_load_usage(argv[0]);
        }
    }
    if (!url || rate <= 0 || rate > 10000 || seconds < 0) {
        return kn_load_usage(argv[0]);
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = kn_load_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(curl = curl_easy_init())) {
        fprintf(stderr, "kanaria_load: cannot start libcurl\n");
        rc = 1;
        goto out;
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, kn_load_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &answer);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, kn_load_discard);

    memset(&tally, 0, sizeof(tally));
    double start = kn_load_now();
    double next = start;
    double report = start + 1;
    while (!kn_load_stop && (seconds == 0 || kn_load_now() - start < seconds)) {
        long status = 0;

        answer.version[0] = '\0';
        CURLcode res = curl_easy_perform(curl);
        if (res == CURLE_OK) {
            curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        }
        kn_load_count(&tally, status >= 200 && status < 300
                                  ? (answer.version[0] ? answer.version : "ok")
                                  : NULL);

        next += 1 / rate;
        if (next < kn_load_now() - 1) {
            next = kn_load_now(); /* fell behind: carry on at the rate, no burst to catch up */
        }
        for (;;) {
            double now = kn_load_now();
            if (now >= report) {
                kn_load_report(&tally);
                report += 1;
            } else if (kn_load_stop || now >= next) {
                break;
            } else {
                kn_load_sleep_until(next < report ? next : report);
            }
        }
    }

out:
    curl_easy_cleanup(curl);
    curl_global_cleanup();
    return rc;
}
