/*
 * migrate: applies db/migrations/NNNN_*.sql in order, each in its own
 * transaction, recorded in schema_migrations, under an advisory lock.
 */
#ifndef MIGRATE_H
#define MIGRATE_H

#include "kg.h"

struct conf;

/* Apply every pending migration from c->migrations_dir. KG_EDB / KG_ESYS on failure. */
enum kg_err migrate_run(const struct conf *c) KG_MUSTCHECK;

#endif
