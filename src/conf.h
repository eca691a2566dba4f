/*
 * conf: the configuration, from one table of keys. Sources in order of
 * precedence: KEYGATE_<KEY> environment variables, the INI file, defaults.
 */
#ifndef CONF_H
#define CONF_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "addr.h"
#include "kg.h"

#define CONF_STR_MAX 1024

struct conf {
	/* process pool */
	char listen[CONF_STR_MAX];        /* unix path or host:port */
	unsigned listen_mode;             /* unix socket mode */
	char listen_group[256];
	int backlog;
	char user[256];                   /* drop privileges to this user when root */
	int workers;
	long max_requests;
	int request_timeout;              /* seconds */
	int shutdown_timeout;             /* seconds */
	int slow_request;                 /* milliseconds */
	char status_allow[CONF_STR_MAX];  /* CIDR list, as written */
	struct addr_list status_allow_list; /* the same, parsed */
	char base_path[256];              /* where the web server mounts us */
	long max_body;                    /* bytes */
	/* logging */
	char log_target[16];              /* stderr | syslog */
	char log_level[16];               /* debug | info | warn | error */
	/* database */
	char database[CONF_STR_MAX];      /* libpq conninfo or service= */
	int db_connect_timeout;           /* seconds */
	int statement_timeout;            /* milliseconds */
	int db_retry_max;                 /* seconds, reconnect back-off ceiling */
	char migrations_dir[CONF_STR_MAX];
	/* passwords */
	int password_min_length;
	char common_passwords[CONF_STR_MAX];
	int password_min_guesses_log10;
	long argon2_memory;               /* KiB */
	int argon2_iterations;
	int argon2_parallelism;
	int hash_concurrency;             /* hashes at once in the pool, 0 = per argon2_parallelism CPUs */
	/* tokens */
	int max_tokens_per_user;           /* sessions (logins) */
	char default_scopes[CONF_STR_MAX]; /* granted to a new account, as written */
	int max_api_tokens_per_user;
	int api_token_max_lifetime;       /* seconds */
	int token_idle_timeout;           /* seconds */
	int token_lifetime;               /* seconds */
	int remember_idle_timeout;        /* seconds */
	int remember_lifetime;            /* seconds */
	int touch_interval;               /* seconds */
	long token_cache_size; /* shared by the pool; 0 = off, else whole sets of 4 (1-7: one) */
	int token_cache_ttl;              /* seconds */
	/* abuse resistance */
	int login_max_failures;
	int login_failure_window;         /* seconds */
	int login_delay;                  /* seconds, first block */
	int login_max_delay;              /* seconds */
	int login_max_per_address;
	int join_max_per_address;         /* per hour */
	int throttle_ipv6_prefix;         /* bits of an IPv6 address that are one client */
	char trusted_proxies[CONF_STR_MAX];    /* CIDR list, as written */
	struct addr_list trusted_proxies_list; /* the same, parsed */
	int audit_retention;              /* seconds */
	/* browsers */
	char cookie_name[64];
	int cookie_secure;                /* 0/1 */
	char allowed_origins[CONF_STR_MAX]; /* origins, as written */
	struct addr_origins origins;        /* the same, parsed */
};

/*
 * Load defaults, then path (if not NULL), then the environment into *c,
 * with the address lists and origins parsed (status_allow_list,
 * trusted_proxies_list, origins): nothing needs to parse them again.
 * On error returns KG_ECONFIG and writes "file:line: message" into err.
 */
enum kg_err conf_load(const char *path, struct conf *c, char *err, size_t errsz) KG_MUSTCHECK;

/*
 * A reload: copy into next, from old, every key the table marks as taking
 * effect only on restart (those keygate.conf(5) marks [restart]). Returns how many of them next had changed, and writes
 * their names, in table order and comma-separated, into changed ("" for
 * none; cut short if changedsz is too small).
 */
int conf_keep_restart_keys(const struct conf *old, struct conf *next, char *changed, size_t changedsz);

/* Which config file to use: the -c argument, else $KEYGATE_CONFIG, else the default. */
const char *conf_path(const char *arg);

/* Print every key with its current value, as INI, to stdout (check-config -v). */
void conf_dump(const struct conf *c);

/* Key names in table order; NULL-terminated (for the docs test). */
const char *const *conf_keys(void);

/* Print what is valid but unwise (one line each) to f; returns how many. */
int conf_warnings(const struct conf *c, FILE *f);

/* Parse a duration "90", "90s", "15m", "12h", "30d" into seconds; -1 on error. */
long conf_parse_duration(const char *s);

#endif
