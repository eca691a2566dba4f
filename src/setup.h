/*
 * setup: hands the configuration to the modules that read it, in one
 * place. The pool calls setup_worker at start and on each reload (before
 * forking the workers that use it); the command line calls setup_cli, which
 * maps none of the pool's shared memory.
 */
#ifndef SETUP_H
#define SETUP_H

#include "kg.h"

struct conf;

/*
 * What the admin commands need: logging, passwords, the rules (auth) and
 * the database settings. Logs why and returns KG_ECONFIG (bad log
 * settings) or password_init's error (common_passwords).
 */
enum kg_err setup_cli(const struct conf *c) KG_MUSTCHECK;

/*
 * Everything the request path needs: setup_cli, the handlers' settings
 * (api) and a fresh token cache shared by the workers forked after it.
 * Logs why and returns the first error; the modules set up before it keep
 * c's settings.
 */
enum kg_err setup_worker(const struct conf *c) KG_MUSTCHECK;

#endif
