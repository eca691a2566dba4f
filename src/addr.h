/*
 * addr: client addresses and CIDR lists (status_allow, trusted proxies).
 */
#ifndef ADDR_H
#define ADDR_H

#include <stddef.h>

#include "kg.h"

#define ADDR_LIST_MAX 64

struct addr_net {
	int family;               /* AF_INET or AF_INET6 */
	unsigned char bytes[16];
	unsigned prefix;
};

struct addr_list {
	struct addr_net nets[ADDR_LIST_MAX];
	unsigned n;
};

/* Parse a space- or comma-separated list of addresses/CIDRs. KG_ECONFIG on error. */
enum kg_err addr_list_parse(const char *spec, struct addr_list *out) KG_MUSTCHECK;

/* 1 when the textual address ip lies in one of the networks of l, else 0. */
int addr_list_match(const struct addr_list *l, const char *ip);

/*
 * The client's address: remote, unless remote is a trusted proxy; then the
 * right-most address of X-Forwarded-For that is not a trusted proxy (or the
 * left-most, when all are). Writes "" for no usable address.
 */
void addr_client(const char *remote, const char *xff, const struct addr_list *trusted,
    char *out, size_t outsz);

#endif
