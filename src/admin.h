/*
 * admin: the operator's subcommands (user, token, events, prune). They use
 * the same validation, password rules and database code as the API.
 */
#ifndef ADMIN_H
#define ADMIN_H

#include <stdio.h>

struct conf;

/* Exit codes: 0 success, 1 usage or data error, 2 database unreachable. */
#define ADMIN_OK 0
#define ADMIN_EUSAGE 1
#define ADMIN_EDB 2

/* Run `keygate <cmd> argv...` (argv[0] is the command). */
int admin_main(const struct conf *c, int argc, char **argv);

/* The usage lines of cmd (sub), or of every admin command when cmd is NULL. */
void admin_usage_lines(FILE *f, const char *cmd, const char *sub);

/* 1 when cmd is one of the admin commands. */
int admin_is_command(const char *cmd);

#endif
