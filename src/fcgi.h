/*
 * fcgi: the only includer of fcgiapp.h. Accepts requests on fd 0, reads
 * parameters and a bounded body into struct request, writes responses.
 */
#ifndef FCGI_H
#define FCGI_H

#include <signal.h>

#include "kg.h"

struct conf;

/* Initialise libfcgi; call after our signal handlers are installed. */
enum kg_err fcgi_init(void) KG_MUSTCHECK;

/* Ask a worker blocked in accept to return (from a signal handler). */
void fcgi_shutdown_pending(void);

/*
 * Serve requests on fd 0 until *stop is set, accept fails, or max_requests
 * (0 = unlimited) have been served. SIGTERM, SIGINT and SIGHUP are let in
 * only while it waits for a connection, or for the next request on one the
 * web server keeps; from then until that request is answered they are
 * blocked, so that a request once accepted is always answered (they stay
 * blocked on return). Other signals, such as the parent-death SIGUSR2, are
 * never blocked. Returns the number of requests served.
 */
long fcgi_serve(const struct conf *c, volatile sig_atomic_t *stop);

#endif
