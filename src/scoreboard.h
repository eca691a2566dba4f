/*
 * scoreboard: a shared-memory table of the workers, written by each worker
 * about itself and by the master about the pool, read by GET /status.
 */
#ifndef SCOREBOARD_H
#define SCOREBOARD_H

#include <sys/types.h>

#include "kg.h"

#define SCOREBOARD_MAX 256

struct json_obj;

/* Map the table (before forking), room for SCOREBOARD_MAX slots. KG_ESYS when mmap fails. */
enum kg_err scoreboard_init(void) KG_MUSTCHECK;

/* Master: a worker took slot (pid); -1 when the table is full. */
int scoreboard_claim(pid_t pid);
/* Master: record the pid of the worker forked for slot. */
void scoreboard_set_pid(int slot, pid_t pid);
/* Master: the worker in slot left. */
void scoreboard_release(int slot);
/* Master: count one respawn. */
void scoreboard_respawned(void);
/* Master: monotonic ms at which slot's current request started (0 if idle). */
long long scoreboard_busy_since(int slot);

/* Worker: this process is in slot. */
void scoreboard_attach(int slot);
/* Worker: a request started (at now_ms, monotonic) / finished (slow: took slow_request or longer). */
void scoreboard_request_begin(long long now_ms);
void scoreboard_request_end(int slow);

/* Add "pool" and "workers" to o (GET /status). */
void scoreboard_report(struct json_obj *o);

#endif
