/*
 * kanaria — logging.
 *
 * One line per event on stderr, logfmt by default:
 *
 *     time=2026-11-25T19:40:01.123Z level=info who=reconcile app=hello msg="planned PIPELINE"
 *
 * or one JSON object per line with kn_log_setup(..., KN_LOG_JSON). Every line names its speaker:
 * the `who` argument is a logfmt fragment ("reconcile app=hello deployment=42"); its first word
 * becomes who=..., the rest are copied as fields. Safe to call from any thread (one write(2) per
 * line).
 */
#ifndef KANARIA_LOG_H
#define KANARIA_LOG_H

enum kn_log_level {
    KN_LOG_DEBUG = 0,
    KN_LOG_INFO,
    KN_LOG_WARN,
    KN_LOG_ERROR,
    KN_LOG_OFF,
};

enum kn_log_format {
    KN_LOG_LOGFMT = 0,
    KN_LOG_JSON,
};

/* Set the minimum level and the format; before any call, lines at INFO and up are logfmt. */
void kn_log_setup(enum kn_log_level min, enum kn_log_format format);

/* Parse "debug" | "info" | "warn" | "error" | "off"; returns 0 or KN_EINVAL. */
int kn_log_level_parse(const char *s, enum kn_log_level *out);

/* Parse "logfmt" | "json"; returns 0 or KN_EINVAL. */
int kn_log_format_parse(const char *s, enum kn_log_format *out);

int kn_log_enabled(enum kn_log_level level);

void kn_log_write(enum kn_log_level level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Format one line into buf without writing it (for tests and for storing stage log lines);
 * `now_ms` is the wall-clock time to print. Returns the length written (truncated at size-1). */
int kn_log_format_line(char *buf, unsigned long size, long long now_ms, enum kn_log_level level,
                       enum kn_log_format format, const char *who, const char *msg);

#define kn_log_debug(who, ...) kn_log_write(KN_LOG_DEBUG, who, __VA_ARGS__)
#define kn_log_info(who, ...) kn_log_write(KN_LOG_INFO, who, __VA_ARGS__)
#define kn_log_warn(who, ...) kn_log_write(KN_LOG_WARN, who, __VA_ARGS__)
#define kn_log_error(who, ...) kn_log_write(KN_LOG_ERROR, who, __VA_ARGS__)

#endif /* KANARIA_LOG_H */
