/*
 * router: (method, path) -> handler, and the one place where an error code
 * becomes an HTTP status and a JSON error body.
 */
#ifndef ROUTER_H
#define ROUTER_H

#include "kg.h"

struct request;
struct response;

/* Route req and fill resp; never fails: errors become error responses. */
void router_handle(struct request *req, struct response *resp);

/* Turn err into resp's status, error body and headers. */
void router_error(struct response *resp, enum kg_err err);

/* HTTP status for an error code (200 for KG_OK). */
int router_status(enum kg_err err);

#endif
