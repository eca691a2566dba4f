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
 * Run `keygate serve` with configuration c loaded from conf_file (NULL when
 * only defaults and the environment apply). Returns the process exit code.
 */
int master_run(const char *conf_file, struct conf *c);

#endif
