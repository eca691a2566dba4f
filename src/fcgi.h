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
 * (0 = unlimited) have been served. SIGTERM/SIGINT are blocked while a
 * request is in progress so that it always completes. Returns the number
 * of requests served.
 */
long fcgi_serve(const struct conf *c, volatile sig_atomic_t *stop);

#endif
