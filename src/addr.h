/*
 * addr: client addresses, CIDR lists (status_allow, trusted proxies), the
 * keys per-address limits count under, and the list of web origins
 * (allowed_origins) that conf parses and http matches against.
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

/* Room for any throttle key addr_throttle_key writes. */
#define ADDR_KEY_MAX 64
/* The one key shared by every request without a usable address. */
#define ADDR_KEY_UNKNOWN "unknown"

/*
 * The key per-address limits count a client under: an IPv4 address as
 * itself (IPv4-mapped IPv6 included), an IPv6 address as its network of
 * v6_prefix bits ("2001:db8:1:2::/64"; the address itself at 128), and
 * anything else (NULL, "", not an address) as ADDR_KEY_UNKNOWN.
 */
void addr_throttle_key(const char *ip, unsigned v6_prefix, char *out, size_t outsz);

#define ADDR_ORIGINS_MAX 32
#define ADDR_ORIGIN_LEN 256

/* allowed_origins: exact "scheme://host[:port]" strings, without a trailing '/'. */
struct addr_origins {
	char v[ADDR_ORIGINS_MAX][ADDR_ORIGIN_LEN];
	size_t n;
};

/*
 * Parse a space- or comma-separated list of http(s) origins into out (its
 * trailing slashes dropped). KG_ECONFIG on anything else, on a path, or on
 * more than ADDR_ORIGINS_MAX of them.
 */
enum kg_err addr_origins_parse(const char *spec, struct addr_origins *out) KG_MUSTCHECK;

#endif
