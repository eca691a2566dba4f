/*
 * keygate: the command line. Reads the options and the configuration, runs
 * check-config (with --connect's checks) and migrate here, and hands serve
 * to master and the admin commands (user, token, events, prune) to admin.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "admin.h"
#include "conf.h"
#include "db.h"
#include "log.h"
#include "master.h"
#include "migrate.h"

/* The commands of this file, each with its own usage for `keygate CMD --help`. */
static const struct {
	const char *name, *args, *what;
} main_commands[] = {
	{ "serve", "", "run the FastCGI worker pool (the default command)" },
	{ "migrate", "", "apply pending database migrations (exit 2: database unreachable)" },
	{ "check-config", " [-v] [--connect]",
	    "validate the configuration and exit (-v: print it; --connect: try what it needs)" },
};

#define MAIN_NCOMMANDS (sizeof(main_commands) / sizeof(main_commands[0]))

static void
usage_notes(FILE *f)
{
	fprintf(f,
	    "The configuration file is -c, else $KEYGATE_CONFIG, else %s.\n"
	    "Any key can be overridden by the environment variable KEYGATE_<KEY>.\n",
	    conf_path(NULL));
}

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: keygate [-c file] [command]\ncommands:\n");
	for (i = 0; i < MAIN_NCOMMANDS; i++)
		fprintf(f, "  %-13s  %s\n", main_commands[i].name, main_commands[i].what);
	fprintf(f, "administration (keygate COMMAND --help for one):\n");
	admin_usage_lines(f, NULL, NULL);
	usage_notes(f);
}

/* `keygate [-c file] CMD --help`: that command's usage alone. */
static void
usage_of(FILE *f, size_t i)
{
	fprintf(f, "usage: keygate [-c file] %s%s\n  %s\n", main_commands[i].name,
	    main_commands[i].args, main_commands[i].what);
	usage_notes(f);
}

/*
 * The arguments after a command: for one of main_commands -h/--help and
 * check-config's -v and --connect, nothing else; an admin command parses
 * its own; an unknown one takes none. Returns -1 to go on, else the exit
 * status.
 */
static int
main_command_args(int argc, char *argv[], int *verbose, int *connect)
{
	size_t i;
	int k, bad = 0;

	for (i = 0; i < MAIN_NCOMMANDS; i++)
		if (strcmp(argv[0], main_commands[i].name) == 0)
			break;
	if (i == MAIN_NCOMMANDS) {
		if (argc == 1 || admin_is_command(argv[0]))
			return -1;
		usage(stderr);
		return 1;
	}
	for (k = 1; k < argc; k++) {
		if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
			usage_of(stdout, i);
			return 0;
		}
		if (strcmp(argv[0], "check-config") == 0 && strcmp(argv[k], "-v") == 0)
			*verbose = 1;
		else if (strcmp(argv[0], "check-config") == 0 && strcmp(argv[k], "--connect") == 0)
			*connect = 1;
		else
			bad = 1;
	}
	if (!bad)
		return -1;
	usage_of(stderr, i);
	return 1;
}

/*
 * The default file may be absent (everything from the environment); a file
 * named explicitly must exist.
 */
static const char *
main_conf_file(const char *arg)
{
	const char *path = conf_path(arg);

	if (arg == NULL && getenv("KEYGATE_CONFIG") == NULL && access(path, F_OK) != 0)
		return NULL;
	return path;
}

/*
 * check-config --connect: what keygate will need, tried as the invoking
 * user (run it as the user keygate runs as). One line per finding; exit
 * 0 all well, 1 something keygate cannot do, 2 the database unreachable
 * or its schema not migrated. The socket's folder is only a warning: it
 * matters only to a keygate that binds its own socket, which this command
 * cannot tell from one given its socket by systemd or a web server.
 */
static int
main_check_connect(const struct conf *c)
{
	char dir[CONF_STR_MAX], missing[256];
	char *slash;
	int rc = 0;

	if (c->listen[0] == '/') {
		(void)kg_strlcpy(dir, c->listen, sizeof(dir));
		slash = strrchr(dir, '/');
		*(slash == dir ? slash + 1 : slash) = '\0';
		if (access(dir, W_OK | X_OK) == 0)
			printf("ok: listen: folder %s exists and is writable\n", dir);
		else
			printf("warning: listen: folder %s: %s: keygate serve on its own binds %s"
			    " there; no matter when systemd, spawn-fcgi or the web server hands"
			    " keygate its socket\n", dir, strerror(errno), c->listen);
	}
	db_configure(c);
	if (db_ready() != KG_OK) {
		if (db_schema_missing())
			printf("error: database: schema not migrated: run `keygate migrate`\n");
		else
			printf("error: database: unreachable as this user (the reason is logged above)\n");
		return 2;
	}
	printf("ok: database: connected; schema %s or later; every statement prepared\n",
	    DB_SCHEMA_VERSION);
	if (db_privileges_missing(missing, sizeof(missing)) != KG_OK) {
		printf("error: database: cannot read this role's privileges\n");
		rc = 1;
	} else if (missing[0] != '\0') {
		printf("error: database: this role may not use %s (GRANT the keygate role to it)\n",
		    missing);
		rc = 1;
	} else
		printf("ok: database: this role may read and write every table keygate uses\n");
	db_close();
	return rc;
}

static const struct option main_opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

int
main(int argc, char *argv[])
{
	const char *arg_conf = NULL, *file, *cmd;
	struct conf c;
	char err[1024];
	int ch, verbose = 0, connect = 0;

	/* "+": stop at the command, whose own options come after it. */
	while ((ch = getopt_long(argc, argv, "+c:hvV", main_opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			arg_conf = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'v':
			verbose = 1;
			break;
		case 'V':
			printf("keygate %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	cmd = optind < argc ? argv[optind] : "serve";
	if (optind < argc && (ch = main_command_args(argc - optind, argv + optind, &verbose,
	    &connect)) >= 0)
		return ch;
	file = main_conf_file(arg_conf);
	if (conf_load(file, &c, err, sizeof(err)) != KG_OK) {
		/*
		 * A web server that starts keygate (mod_fcgid, lighttpd's
		 * bin-path) shows only this line: say that nothing was served
		 * and how to check a fix before the server starts keygate again.
		 */
		if (strcmp(cmd, "serve") == 0)
			fprintf(stderr, "keygate: not starting: %s; check a fix with"
			    " \"keygate check-config\" before reloading the web server\n", err);
		else
			fprintf(stderr, "keygate: %s\n", err);
		return 1;
	}
	if (log_setup(c.log_target, c.log_level) != 0) {
		fprintf(stderr, "keygate: bad log settings\n");
		return 1;
	}
	if (strcmp(cmd, "check-config") == 0) {
		if (verbose)
			conf_dump(&c);
		printf("keygate: configuration %s is valid\n", file ? file : "(defaults and environment)");
		(void)conf_warnings(&c, stdout);
		return connect ? main_check_connect(&c) : 0;
	}
	if (strcmp(cmd, "migrate") == 0) {
		db_configure(&c);
		return migrate_run(&c) == KG_OK ? 0 : 2;
	}
	if (admin_is_command(cmd))
		return admin_main(&c, argc - optind, argv + optind);
	if (strcmp(cmd, "serve") == 0)
		return master_run(file, &c);
	fprintf(stderr, "keygate: unknown command %s\n", cmd);
	usage(stderr);
	return 1;
}
