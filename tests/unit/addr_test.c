/*
 * Unit tests for src/addr.c: parsing address/CIDR lists (status_allow,
 * trusted_proxies), matching addresses against them, and picking the
 * client address behind trusted proxies.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "addr.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Specs that parse, with the number of networks they hold. */
static const struct {
	const char *spec;
	unsigned n;
} parse_ok[] = {
	{ "", 0 },
	{ "   ", 0 },
	{ " , ,\t", 0 },
	{ "127.0.0.1", 1 },
	{ "127.0.0.0/8 ::1", 2 },
	{ "0.0.0.0/0", 1 },
	{ "10.1.2.3/32", 1 },
	{ "10.0.0.0/7", 1 },
	{ "::/0", 1 },
	{ "::1/128", 1 },
	{ "2001:db8::/32", 1 },
	{ "10.0.0.0/8,192.168.0.0/16", 2 },
	{ "10.0.0.0/8, 192.168.0.0/16 ,::1", 3 },
	{ "  10.0.0.1\t10.0.0.2  ", 2 },
	{ "10.0.0.1,,,10.0.0.2", 2 },
	{ "::ffff:10.0.0.1", 1 },
	{ "10.0.0.0/0", 1 },
	{ "fe80::/10 fc00::/7", 2 },
};

static void
test_parse_ok(void **state)
{
	struct addr_list l;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(parse_ok); i++) {
		enum kg_err err = addr_list_parse(parse_ok[i].spec, &l);

		if (err != KG_OK || l.n != parse_ok[i].n)
			fail_msg("addr_list_parse(\"%s\"): err %d n %u, want KG_OK n %u",
			    parse_ok[i].spec, (int)err, l.n, parse_ok[i].n);
	}
}

static void
test_parse_fields(void **state)
{
	static const unsigned char v4[16] = { 10, 0, 0, 0 };
	static const unsigned char v6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	static const unsigned char mapped[16] = { 192, 168, 1, 2 };
	struct addr_list l;

	(void)state;
	assert_int_equal(addr_list_parse("10.0.0.0/8 2001:db8::/32 ::ffff:192.168.1.2", &l), KG_OK);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.nets[0].family, AF_INET);
	assert_int_equal(l.nets[0].prefix, 8);
	assert_memory_equal(l.nets[0].bytes, v4, 16);
	assert_int_equal(l.nets[1].family, AF_INET6);
	assert_int_equal(l.nets[1].prefix, 32);
	assert_memory_equal(l.nets[1].bytes, v6, 16);
	/* An IPv4-mapped IPv6 address is stored as the IPv4 address /32. */
	assert_int_equal(l.nets[2].family, AF_INET);
	assert_int_equal(l.nets[2].prefix, 32);
	assert_memory_equal(l.nets[2].bytes, mapped, 16);
}

static const char *const parse_bad[] = {
	"10.0.0.0/33",
	"::/129",
	"2001:db8::/200",
	"1.2.3",
	"abc",
	"10.0.0.0/",
	"10.0.0.0/-1",
	"10.0.0.0/8x",
	"10.0.0.0//8",
	"10.0.0.0/8/8",
	"/8",
	"256.0.0.1",
	"1.2.3.4.5",
	"10.0.0.1 bogus",
	"10.0.0.1, ::1, 1.2.3",
	"2001:db8:::1",
	"localhost",
	"10.0.0.0/ 8",
	/* one item longer than any address can be */
	"1111111111111111111111111111111111111111111111111111111111111111111111",
};

static void
test_parse_bad(void **state)
{
	struct addr_list l;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(parse_bad); i++) {
		enum kg_err err = addr_list_parse(parse_bad[i], &l);

		if (err != KG_ECONFIG)
			fail_msg("addr_list_parse(\"%s\"): err %d, want KG_ECONFIG",
			    parse_bad[i], (int)err);
	}
}

/* Build "10.0.0.1 10.0.0.2 ..." with n entries. */
static void
make_list(char *buf, size_t bufsz, unsigned n)
{
	size_t used = 0;
	unsigned i;

	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		int w = snprintf(buf + used, bufsz - used, "%s10.0.%u.%u", i ? " " : "",
		    i / 250, i % 250 + 1);

		assert_true(w > 0 && (size_t)w < bufsz - used);
		used += (size_t)w;
	}
}

static void
test_parse_limit(void **state)
{
	char buf[2048];
	struct addr_list l;

	(void)state;
	make_list(buf, sizeof(buf), ADDR_LIST_MAX);
	assert_int_equal(addr_list_parse(buf, &l), KG_OK);
	assert_int_equal(l.n, ADDR_LIST_MAX);
	assert_true(addr_list_match(&l, "10.0.0.1"));
	assert_true(addr_list_match(&l, "10.0.0.64"));
	assert_false(addr_list_match(&l, "10.0.0.65"));

	make_list(buf, sizeof(buf), ADDR_LIST_MAX + 1);
	assert_int_equal(addr_list_parse(buf, &l), KG_ECONFIG);
}

static const struct {
	const char *spec;
	const char *ip;
	int match;
} match_cases[] = {
	/* /0 matches everything of its family, and only that */
	{ "0.0.0.0/0", "1.2.3.4", 1 },
	{ "0.0.0.0/0", "0.0.0.0", 1 },
	{ "0.0.0.0/0", "255.255.255.255", 1 },
	{ "0.0.0.0/0", "::1", 0 },
	{ "0.0.0.0/0", "::ffff:1.2.3.4", 1 },
	{ "::/0", "2001:db8::1", 1 },
	{ "::/0", "::", 1 },
	{ "::/0", "1.2.3.4", 0 },
	/* host bits of the network are ignored under /0 */
	{ "10.0.0.0/0", "192.168.1.1", 1 },
	/* /32 is one address */
	{ "10.1.2.3/32", "10.1.2.3", 1 },
	{ "10.1.2.3/32", "10.1.2.4", 0 },
	{ "10.1.2.3/32", "10.1.2.2", 0 },
	{ "10.1.2.3", "10.1.2.3", 1 },
	{ "10.1.2.3", "10.1.2.30", 0 },
	/* /7: 10.0.0.0/7 is 10.0.0.0 - 11.255.255.255 */
	{ "10.0.0.0/7", "10.0.0.0", 1 },
	{ "10.0.0.0/7", "10.255.255.255", 1 },
	{ "10.0.0.0/7", "11.0.0.0", 1 },
	{ "10.0.0.0/7", "11.255.255.255", 1 },
	{ "10.0.0.0/7", "9.255.255.255", 0 },
	{ "10.0.0.0/7", "12.0.0.0", 0 },
	{ "11.1.2.3/7", "10.9.9.9", 1 },
	/* prefixes that end inside a byte */
	{ "192.168.1.0/25", "192.168.1.127", 1 },
	{ "192.168.1.0/25", "192.168.1.128", 0 },
	{ "192.168.1.128/25", "192.168.1.128", 1 },
	{ "192.168.1.128/25", "192.168.1.127", 0 },
	{ "172.16.0.0/12", "172.31.255.255", 1 },
	{ "172.16.0.0/12", "172.32.0.0", 0 },
	{ "172.16.0.0/12", "172.15.255.255", 0 },
	{ "128.0.0.0/1", "128.0.0.1", 1 },
	{ "128.0.0.0/1", "127.255.255.255", 0 },
	{ "1.2.3.4/31", "1.2.3.5", 1 },
	{ "1.2.3.4/31", "1.2.3.6", 0 },
	{ "1.2.3.4/31", "1.2.3.3", 0 },
	/* IPv6 */
	{ "::1", "::1", 1 },
	{ "::1", "::2", 0 },
	{ "::1", "0:0:0:0:0:0:0:1", 1 },
	{ "::1", "127.0.0.1", 0 },
	{ "2001:db8::/32", "2001:db8::1", 1 },
	{ "2001:db8::/32", "2001:0db8:ffff:ffff:ffff:ffff:ffff:ffff", 1 },
	{ "2001:db8::/32", "2001:DB8:1::", 1 },
	{ "2001:db8::/32", "2001:db9::1", 0 },
	{ "2001:db8::/32", "2001:db7:ffff::1", 0 },
	{ "2001:db8::/32", "10.0.0.1", 0 },
	{ "2001:db8::/33", "2001:db8:7fff::1", 1 },
	{ "2001:db8::/33", "2001:db8:8000::1", 0 },
	{ "fe80::/10", "febf::1", 1 },
	{ "fe80::/10", "fec0::1", 0 },
	{ "2001:db8::1/128", "2001:db8::1", 1 },
	{ "2001:db8::1/128", "2001:db8::2", 0 },
	/* IPv4-mapped IPv6 addresses are their IPv4 address */
	{ "10.0.0.0/8", "::ffff:10.1.2.3", 1 },
	{ "10.0.0.0/8", "::FFFF:10.1.2.3", 1 },
	{ "10.0.0.0/8", "::ffff:a01:203", 1 },
	{ "10.0.0.0/8", "::ffff:11.1.2.3", 0 },
	{ "127.0.0.0/8 ::1", "::ffff:127.0.0.1", 1 },
	{ "::ffff:10.0.0.1", "10.0.0.1", 1 },
	{ "::ffff:10.0.0.1", "::ffff:10.0.0.1", 1 },
	{ "::ffff:10.0.0.1", "10.0.0.2", 0 },
	/* not mapped: IPv4-compatible (deprecated) and NAT64 stay IPv6 */
	{ "10.0.0.0/8", "::10.1.2.3", 0 },
	{ "10.0.0.0/8", "64:ff9b::10.1.2.3", 0 },
	/* lists: any network matches */
	{ "10.0.0.0/8, 192.168.0.0/16 ::1", "192.168.3.4", 1 },
	{ "10.0.0.0/8, 192.168.0.0/16 ::1", "::1", 1 },
	{ "10.0.0.0/8, 192.168.0.0/16 ::1", "10.9.9.9", 1 },
	{ "10.0.0.0/8, 192.168.0.0/16 ::1", "172.16.0.1", 0 },
	{ "10.0.0.1\t10.0.0.2", "10.0.0.2", 1 },
	/* an empty list matches nothing */
	{ "", "127.0.0.1", 0 },
	{ "", "::1", 0 },
	/* strings that are no address never match, not even 0/0 */
	{ "0.0.0.0/0 ::/0", "", 0 },
	{ "0.0.0.0/0 ::/0", "abc", 0 },
	{ "0.0.0.0/0 ::/0", "unix:", 0 },
	{ "0.0.0.0/0 ::/0", "localhost", 0 },
	{ "0.0.0.0/0 ::/0", "1.2.3", 0 },
	{ "0.0.0.0/0 ::/0", "1.2.3.4.5", 0 },
	{ "0.0.0.0/0 ::/0", "256.1.1.1", 0 },
	{ "0.0.0.0/0 ::/0", "10.0.0.1/8", 0 },
	{ "0.0.0.0/0 ::/0", " 10.0.0.1", 0 },
	{ "0.0.0.0/0 ::/0", "10.0.0.1 ", 0 },
	{ "0.0.0.0/0 ::/0", "10.0.0.1, 10.0.0.2", 0 },
	{ "0.0.0.0/0 ::/0", "[::1]", 0 },
	{ "0.0.0.0/0 ::/0", "::1%lo", 0 },
	{ "0.0.0.0/0 ::/0", "gggg::1", 0 },
	{ "0.0.0.0/0 ::/0", "10.0.0.1:80", 0 },
};

static void
test_match(void **state)
{
	struct addr_list l;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(match_cases); i++) {
		int got;

		if (addr_list_parse(match_cases[i].spec, &l) != KG_OK)
			fail_msg("addr_list_parse(\"%s\") failed", match_cases[i].spec);
		got = addr_list_match(&l, match_cases[i].ip);
		if (got != match_cases[i].match)
			fail_msg("addr_list_match(\"%s\", \"%s\") = %d, want %d",
			    match_cases[i].spec, match_cases[i].ip, got, match_cases[i].match);
	}
}

static void
test_match_null(void **state)
{
	struct addr_list l;

	(void)state;
	assert_int_equal(addr_list_parse("0.0.0.0/0 ::/0", &l), KG_OK);
	assert_false(addr_list_match(&l, NULL));
}

/* A failed parse leaves no networks behind that could match later. */
static void
test_parse_bad_then_match(void **state)
{
	struct addr_list l;

	(void)state;
	assert_int_equal(addr_list_parse("10.0.0.0/8", &l), KG_OK);
	assert_int_equal(addr_list_parse("abc", &l), KG_ECONFIG);
	assert_int_equal(l.n, 0);
	assert_false(addr_list_match(&l, "10.0.0.1"));
}

static const struct {
	const char *remote;
	const char *xff;
	const char *trusted;
	const char *want;
} client_cases[] = {
	/* no proxy trusted: the peer, whatever X-Forwarded-For says */
	{ "203.0.113.5", NULL, "", "203.0.113.5" },
	{ "203.0.113.5", "1.2.3.4", "", "203.0.113.5" },
	{ "203.0.113.5", "1.2.3.4", "127.0.0.1", "203.0.113.5" },
	/* trusted proxy without X-Forwarded-For: the proxy */
	{ "127.0.0.1", NULL, "127.0.0.1", "127.0.0.1" },
	{ "127.0.0.1", "", "127.0.0.1", "127.0.0.1" },
	/* the right-most address that is not a trusted proxy */
	{ "127.0.0.1", "1.2.3.4", "127.0.0.1", "1.2.3.4" },
	{ "127.0.0.1", "5.6.7.8, 1.2.3.4", "127.0.0.1", "1.2.3.4" },
	{ "127.0.0.1", "5.6.7.8,1.2.3.4", "127.0.0.1", "1.2.3.4" },
	{ "127.0.0.1", "1.2.3.4, 10.0.0.2", "127.0.0.1 10.0.0.0/8", "1.2.3.4" },
	{ "127.0.0.1", "9.9.9.9, 1.2.3.4, 10.0.0.2, 10.0.0.3", "127.0.0.0/8, 10.0.0.0/8",
	    "1.2.3.4" },
	{ "::1", "2001:db8::7", "::1", "2001:db8::7" },
	{ "::ffff:127.0.0.1", "1.2.3.4", "127.0.0.1", "1.2.3.4" },
	/* all trusted: the left-most */
	{ "127.0.0.1", "10.0.0.3, 10.0.0.2", "127.0.0.1 10.0.0.0/8", "10.0.0.3" },
	/* blanks around entries */
	{ "127.0.0.1", "  1.2.3.4  ", "127.0.0.1", "1.2.3.4" },
	{ "127.0.0.1", "5.6.7.8 ,\t1.2.3.4\t", "127.0.0.1", "1.2.3.4" },
	/* garbage stops the walk at the last address believed */
	{ "127.0.0.1", "garbage", "127.0.0.1", "127.0.0.1" },
	{ "127.0.0.1", "garbage, 1.2.3.4", "127.0.0.1", "1.2.3.4" },
	{ "127.0.0.1", "1.2.3.4, garbage", "127.0.0.1", "127.0.0.1" },
	{ "127.0.0.1", "1.2.3.4, garbage, 10.0.0.2", "127.0.0.1 10.0.0.0/8", "10.0.0.2" },
	{ "127.0.0.1", "1.2.3.4,", "127.0.0.1", "127.0.0.1" },
	/* no usable peer address */
	{ NULL, "1.2.3.4", "127.0.0.1", "" },
	{ "", NULL, "", "" },
	{ "unix:", NULL, "", "" },
	{ "not an address", "1.2.3.4", "0.0.0.0/0", "" },
	/* blanks around the peer address are dropped */
	{ " 203.0.113.5 ", NULL, "", "203.0.113.5" },
};

static void
test_client(void **state)
{
	struct addr_list trusted;
	char out[64];
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(client_cases); i++) {
		if (addr_list_parse(client_cases[i].trusted, &trusted) != KG_OK)
			fail_msg("addr_list_parse(\"%s\") failed", client_cases[i].trusted);
		memset(out, 'X', sizeof(out));
		addr_client(client_cases[i].remote, client_cases[i].xff, &trusted, out, sizeof(out));
		if (strcmp(out, client_cases[i].want) != 0)
			fail_msg("addr_client(\"%s\", \"%s\", trusted \"%s\") = \"%s\", want \"%s\"",
			    client_cases[i].remote ? client_cases[i].remote : "(null)",
			    client_cases[i].xff ? client_cases[i].xff : "(null)",
			    client_cases[i].trusted, out, client_cases[i].want);
	}
}

static void
test_client_small_buffer(void **state)
{
	struct addr_list trusted;
	char out[8];

	(void)state;
	assert_int_equal(addr_list_parse("", &trusted), KG_OK);
	/* Too long for the buffer: no address rather than a truncated one. */
	addr_client("203.0.113.5", NULL, &trusted, out, sizeof(out));
	assert_string_equal(out, "");
	addr_client("1.2.3.4", NULL, &trusted, out, sizeof(out));
	assert_string_equal(out, "1.2.3.4");
	/* A zero-sized buffer is left alone. */
	out[0] = 'Z';
	addr_client("1.2.3.4", NULL, &trusted, out, 0);
	assert_int_equal(out[0], 'Z');
}

/* The keys per-address limits count clients under. */
static const struct {
	const char *ip;
	unsigned prefix;
	const char *want;
} key_cases[] = {
	/* IPv4: the address itself, in its usual form, whatever the IPv6 prefix */
	{ "203.0.113.5", 64, "203.0.113.5" },
	{ "203.0.113.5", 1, "203.0.113.5" },
	{ "::ffff:203.0.113.5", 64, "203.0.113.5" },
	{ "::FFFF:cb00:7105", 64, "203.0.113.5" },
	/* IPv6: the network of the prefix, every form of one address alike */
	{ "2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64" },
	{ "2001:db8:1:2:ffff:ffff:ffff:ffff", 64, "2001:db8:1:2::/64" },
	{ "2001:DB8:1:2::1", 64, "2001:db8:1:2::/64" },
	{ "2001:0db8:0001:0002:0000:0000:0000:0001", 64, "2001:db8:1:2::/64" },
	{ "2001:db8:1:3::1", 64, "2001:db8:1:3::/64" },
	{ "2001:db8:1:2:3:4:5:6", 48, "2001:db8:1::/48" },
	{ "2001:db8:1:2:3:4:5:6", 56, "2001:db8:1::/56" },
	{ "2001:db8:1:2ff:3:4:5:6", 56, "2001:db8:1:200::/56" },
	{ "2001:db8:1:2:3:4:5:6", 60, "2001:db8:1::/60" },
	{ "2001:db8:1:1f:3:4:5:6", 60, "2001:db8:1:10::/60" },
	{ "2001:db8:1:2:3:4:5:6", 127, "2001:db8:1:2:3:4:5:6/127" },
	{ "2001:db8:1:2:3:4:5:7", 127, "2001:db8:1:2:3:4:5:6/127" },
	{ "2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6" },
	{ "2001:db8:1:2:3:4:5:6", 200, "2001:db8:1:2:3:4:5:6" },
	{ "ffff::1", 1, "8000::/1" },
	{ "::1", 64, "::/64" },
	{ "::1", 128, "::1" },
	/* no usable address: the one shared key */
	{ NULL, 64, "unknown" },
	{ "", 64, "unknown" },
	{ "unix:", 64, "unknown" },
	{ "not an address", 64, "unknown" },
	{ "10.0.0.1/8", 64, "unknown" },
	{ "2001:db8::1%eth0", 64, "unknown" },
};

static void
test_throttle_key(void **state)
{
	char out[ADDR_KEY_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(key_cases); i++) {
		memset(out, 'X', sizeof(out));
		addr_throttle_key(key_cases[i].ip, key_cases[i].prefix, out, sizeof(out));
		if (strcmp(out, key_cases[i].want) != 0)
			fail_msg("addr_throttle_key(\"%s\", %u) = \"%s\", want \"%s\"",
			    key_cases[i].ip ? key_cases[i].ip : "(null)", key_cases[i].prefix, out,
			    key_cases[i].want);
	}
}

/* The longest key fits ADDR_KEY_MAX; a buffer too small gets the shared key, never half a network. */
static void
test_throttle_key_bounds(void **state)
{
	char out[ADDR_KEY_MAX], small[12];

	(void)state;
	addr_throttle_key("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 127, out, sizeof(out));
	assert_string_equal(out, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127");
	addr_throttle_key("2001:db8:1:2::1", 64, small, sizeof(small));
	assert_string_equal(small, "unknown");
	small[0] = 'Z';
	addr_throttle_key("1.2.3.4", 64, small, 0);
	assert_int_equal(small[0], 'Z');
}

/* allowed_origins: http(s) origins, trailing slashes dropped; anything else refused. */
static const struct {
	const char *spec;
	size_t n;
	const char *first, *last;
} origins_ok[] = {
	{ "", 0, NULL, NULL },
	{ " ,\t ", 0, NULL, NULL },
	{ "https://app.example", 1, "https://app.example", "https://app.example" },
	{ "https://app.example/ http://x.example:8080//", 2, "https://app.example",
	    "http://x.example:8080" },
	{ "https://a.example,https://b.example\thttps://c.example", 3, "https://a.example",
	    "https://c.example" },
};

static const char *const origins_bad[] = {
	"app.example",
	"ftp://app.example",
	"https://app.example/path",
	"HTTPS://app.example",
	"https://ok.example app.example",
};

static void
test_origins_parse(void **state)
{
	struct addr_origins o;
	char many[40 * 24 + 1] = "", big[ADDR_ORIGIN_LEN + 16];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(origins_ok) / sizeof(origins_ok[0]); i++) {
		assert_int_equal(addr_origins_parse(origins_ok[i].spec, &o), KG_OK);
		assert_int_equal(o.n, origins_ok[i].n);
		if (o.n > 0) {
			assert_string_equal(o.v[0], origins_ok[i].first);
			assert_string_equal(o.v[o.n - 1], origins_ok[i].last);
		}
	}
	for (i = 0; i < sizeof(origins_bad) / sizeof(origins_bad[0]); i++)
		if (addr_origins_parse(origins_bad[i], &o) != KG_ECONFIG)
			fail_msg("accepted \"%s\"", origins_bad[i]);
	/* ADDR_ORIGINS_MAX of them, not one more. */
	for (i = 0; i < ADDR_ORIGINS_MAX + 1; i++) {
		char one[24];

		(void)snprintf(one, sizeof(one), "https://h%02zu.example ", i);
		strcat(many, one);
		if (i == ADDR_ORIGINS_MAX - 1) {
			assert_int_equal(addr_origins_parse(many, &o), KG_OK);
			assert_int_equal(o.n, ADDR_ORIGINS_MAX);
		}
	}
	assert_int_equal(addr_origins_parse(many, &o), KG_ECONFIG);
	/* One too long for ADDR_ORIGIN_LEN. */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "https://", 8);
	assert_int_equal(addr_origins_parse(big, &o), KG_ECONFIG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_fields),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_parse_limit),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_match_null),
		cmocka_unit_test(test_parse_bad_then_match),
		cmocka_unit_test(test_client),
		cmocka_unit_test(test_client_small_buffer),
		cmocka_unit_test(test_throttle_key),
		cmocka_unit_test(test_throttle_key_bounds),
		cmocka_unit_test(test_origins_parse),
	};

	return cmocka_run_group_tests_name("addr", tests, NULL, NULL);
}
