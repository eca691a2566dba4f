/*
 * hashslot: at most n password hashes at once in the pool, shared by its
 * workers. An Argon2id hash holds a core and its memory for tens of
 * milliseconds; more hashes at once than cores only share the cores and
 * the caches, so fewer finish each second.
 */
#ifndef HASHSLOT_H
#define HASHSLOT_H

#include "kg.h"

struct json_obj;

/*
 * Master, before forking: n slots (0: one per lanes CPUs this process may
 * run on, at least one; lanes is argon2_parallelism, the threads of one
 * hash). Until then, and in a process that never called it or whose
 * slots were removed from outside (single-process mode, the command line,
 * ipcrm), hashslot_take and hashslot_give do nothing.
 */
enum kg_err hashslot_init(int n, int lanes) KG_MUSTCHECK;
/* Master, at exit: remove the slots. */
void hashslot_destroy(void);

/* Worker: wait for a slot / give it back. A dead holder's slot comes back by itself. */
void hashslot_take(void);
void hashslot_give(void);

/* Add "hash_slots" to o (GET /status); nothing when there are none. */
void hashslot_report(struct json_obj *o);

#endif
