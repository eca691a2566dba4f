#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "addr.h"

/* Parse ip into family/bytes; IPv4-mapped IPv6 counts as IPv4. */
static int
addr_parse(const char *ip, int *family, unsigned char bytes[16])
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	memset(bytes, 0, 16);
	if (inet_pton(AF_INET, ip, bytes) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, ip, bytes) == 1) {
		if (memcmp(bytes, mapped, sizeof(mapped)) == 0) {
			memmove(bytes, bytes + 12, 4);
			memset(bytes + 4, 0, 12);
			*family = AF_INET;
		} else
			*family = AF_INET6;
		return 0;
	}
	return -1;
}

enum kg_err
addr_list_parse(const char *spec, struct addr_list *out)
{
	char item[64];
	const char *p = spec;

	memset(out, 0, sizeof(*out));
	while (*p != '\0') {
		size_t w;
		char *slash, *end;
		struct addr_net *net;
		long prefix;

		p += strspn(p, " ,\t");
		w = strcspn(p, " ,\t");
		if (w == 0)
			break;
		if (w >= sizeof(item) || out->n >= ADDR_LIST_MAX)
			return KG_ECONFIG;
		memcpy(item, p, w);
		item[w] = '\0';
		p += w;
		net = &out->nets[out->n];
		slash = strchr(item, '/');
		if (slash != NULL)
			*slash = '\0';
		if (addr_parse(item, &net->family, net->bytes) != 0)
			return KG_ECONFIG;
		net->prefix = net->family == AF_INET ? 32 : 128;
		if (slash != NULL) {
			prefix = strtol(slash + 1, &end, 10);
			if (slash[1] == '\0' || *end != '\0' || prefix < 0 || prefix > (long)net->prefix)
				return KG_ECONFIG;
			net->prefix = (unsigned)prefix;
		}
		out->n++;
	}
	return KG_OK;
}

static int
addr_net_contains(const struct addr_net *net, int family, const unsigned char bytes[16])
{
	unsigned full = net->prefix / 8, rest = net->prefix % 8;

	if (net->family != family)
		return 0;
	if (memcmp(net->bytes, bytes, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((net->bytes[full] ^ bytes[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

int
addr_list_match(const struct addr_list *l, const char *ip)
{
	unsigned char bytes[16];
	int family;
	unsigned i;

	if (ip == NULL || addr_parse(ip, &family, bytes) != 0)
		return 0;
	for (i = 0; i < l->n; i++)
		if (addr_net_contains(&l->nets[i], family, bytes))
			return 1;
	return 0;
}

/* Copy the address in s[0..len) without surrounding blanks; 0 when it parses. */
static int
addr_take(const char *s, size_t len, char *out, size_t outsz)
{
	unsigned char bytes[16];
	int family;

	while (len > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len == 0 || len >= outsz)
		return -1;
	memcpy(out, s, len);
	out[len] = '\0';
	return addr_parse(out, &family, bytes);
}

void
addr_client(const char *remote, const char *xff, const struct addr_list *trusted, char *out,
    size_t outsz)
{
	char cand[64];
	const char *end;

	if (outsz == 0)
		return;
	out[0] = '\0';
	if (remote == NULL || addr_take(remote, strlen(remote), out, outsz) != 0) {
		out[0] = '\0';
		return;
	}
	if (xff == NULL || !addr_list_match(trusted, out))
		return;
	end = xff + strlen(xff);
	while (end > xff) {
		const char *start = end;

		while (start > xff && start[-1] != ',')
			start--;
		if (addr_take(start, (size_t)(end - start), cand, sizeof(cand)) != 0)
			return; /* garbage: stop at the last address we could trust */
		(void)snprintf(out, outsz, "%s", cand);
		if (!addr_list_match(trusted, cand))
			return;
		end = start > xff ? start - 1 : start;
	}
}

void
addr_throttle_key(const char *ip, unsigned v6_prefix, char *out, size_t outsz)
{
	char text[INET6_ADDRSTRLEN];
	unsigned char bytes[16];
	unsigned i;
	int family, w;

	if (outsz == 0)
		return;
	if (ip == NULL || addr_parse(ip, &family, bytes) != 0) {
		(void)snprintf(out, outsz, "%s", ADDR_KEY_UNKNOWN);
		return;
	}
	if (v6_prefix > 128)
		v6_prefix = 128;
	/* One client of an IPv6 network holds all of it: key on the network. */
	if (family == AF_INET6)
		for (i = 0; i < 16; i++) {
			unsigned keep = v6_prefix > 8 * i ? v6_prefix - 8 * i : 0;

			if (keep < 8)
				bytes[i] &= (unsigned char)(0xff << (8 - keep));
		}
	if (inet_ntop(family, bytes, text, sizeof(text)) == NULL) {
		(void)snprintf(out, outsz, "%s", ADDR_KEY_UNKNOWN);
		return;
	}
	if (family == AF_INET6 && v6_prefix < 128)
		w = snprintf(out, outsz, "%s/%u", text, v6_prefix);
	else
		w = snprintf(out, outsz, "%s", text);
	if (w < 0 || (size_t)w >= outsz)
		(void)snprintf(out, outsz, "%s", ADDR_KEY_UNKNOWN);
}

enum kg_err
addr_origins_parse(const char *spec, struct addr_origins *out)
{
	const char *p = spec;

	out->n = 0;
	while (*p != '\0') {
		size_t w, len;

		p += strspn(p, " ,\t");
		w = strcspn(p, " ,\t");
		if (w == 0)
			break;
		len = w;
		while (len > 0 && p[len - 1] == '/')
			len--;
		if (len >= ADDR_ORIGIN_LEN || out->n == ADDR_ORIGINS_MAX ||
		    (strncmp(p, "http://", 7) != 0 && strncmp(p, "https://", 8) != 0) ||
		    memchr(p + 8, '/', len > 8 ? len - 8 : 0) != NULL)
			return KG_ECONFIG;
		memcpy(out->v[out->n], p, len);
		out->v[out->n][len] = '\0';
		out->n++;
		p += w;
	}
	return KG_OK;
}
