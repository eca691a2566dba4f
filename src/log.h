/*
 * log: leveled logging to stderr (journald) or syslog.
 * Never pass a password, secret or token to these functions.
 */
#ifndef LOG_H
#define LOG_H

/* Select target ("stderr" or "syslog") and minimum level name; 0 or -1 on a bad name. */
int log_setup(const char *target, const char *level);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));   /* adds strerror(errno) */
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
