/*
 * master: the process pool. Takes the listening socket (fd 0, LISTEN_FDS or
 * bind), forks workers, reaps and respawns them, recycles, kills stuck ones,
 * drains on SIGTERM and reloads on SIGHUP.
 */
#ifndef MASTER_H
#define MASTER_H

#include "kg.h"

struct conf;

/*
 * Hand c to every module the request path uses (logging, passwords, auth,
 * api, db). The serve loop and the admin commands both start here.
 */
enum kg_err master_configure(const struct conf *c) KG_MUSTCHECK;

/*
 * Run `keygate serve` with configuration c loaded from conf_file (NULL when
 * only defaults and the environment apply). Returns the process exit code.
 */
int master_run(const char *conf_file, struct conf *c);

#endif
