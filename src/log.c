#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

static int log_use_syslog;
static enum log_level log_min = LOG_LVL_INFO;

static const char *const log_names[] = { "debug", "info", "warn", "error" };

int
log_setup(const char *target, const char *level)
{
	size_t i;
	int found = 0;

	if (target != NULL) {
		if (strcmp(target, "syslog") == 0) {
			if (!log_use_syslog)
				openlog("keygate", LOG_PID | LOG_NDELAY, LOG_DAEMON);
			log_use_syslog = 1;
		} else if (strcmp(target, "stderr") == 0)
			log_use_syslog = 0;
		else
			return -1;
	}
	if (level == NULL)
		return 0;
	for (i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcmp(level, log_names[i]) == 0) {
			log_min = (enum log_level)i;
			found = 1;
		}
	return found ? 0 : -1;
}

/* 1 when messages of this level are emitted. */
static int
log_enabled(enum log_level lvl)
{
	return lvl >= log_min;
}

static void __attribute__((format(printf, 3, 0)))
log_vemit(enum log_level lvl, int errnum, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR };
	char msg[2048];
	char line[2200];
	struct tm tm;
	time_t now;
	char ts[32];
	int n;

	if (!log_enabled(lvl))
		return;
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	/* Control characters from request data must not forge log lines. */
	for (char *p = msg; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (errnum != 0) {
		size_t used = strlen(msg);
		if (used < sizeof(msg))
			(void)snprintf(msg + used, sizeof(msg) - used, ": %s", strerror(errnum));
	}
	if (log_use_syslog) {
		syslog(prio[lvl], "%s", msg);
		return;
	}
	now = time(NULL);
	if (gmtime_r(&now, &tm) == NULL || strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		ts[0] = '\0';
	n = snprintf(line, sizeof(line), "%s keygate[%ld] %s: %s\n", ts, (long)getpid(),
	    log_names[lvl], msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = (int)sizeof(line) - 1;
	/* One write(2) per line so that lines of concurrent workers do not interleave. */
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

#define LOG_FN(name, lvl, witherr)                                  \
	void name(const char *fmt, ...)                             \
	{                                                           \
		int saved = errno;                                  \
		va_list ap;                                         \
		va_start(ap, fmt);                                  \
		log_vemit(lvl, (witherr) ? saved : 0, fmt, ap);     \
		va_end(ap);                                         \
		errno = saved;                                      \
	}

LOG_FN(log_warn, LOG_LVL_WARN, 1)
LOG_FN(log_warnx, LOG_LVL_WARN, 0)
LOG_FN(log_error, LOG_LVL_ERROR, 0)
LOG_FN(log_info, LOG_LVL_INFO, 0)
LOG_FN(log_debug, LOG_LVL_DEBUG, 0)
