#include <limits.h>
#include <malloc.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "crypto.h"
#include "json.h"

struct json_obj {
	cJSON *node;
	int failed;
};

/*
 * cJSON allocates each node, key and value on its own: a reply to GET /me
 * is some twenty malloc/free pairs, a tenth of a cached token check. Its
 * allocations come instead from this arena, emptied by json_arena_reset()
 * at the end of each request; what does not fit goes to malloc. Both are
 * wiped when given back, so that a parsed password outlives its request in
 * neither.
 */
#define JSON_ARENA_SIZE 16384
static alignas(max_align_t) unsigned char json_arena[JSON_ARENA_SIZE];
static size_t json_arena_used;
static int json_hooked;

static int
json_in_arena(const void *p)
{
	uintptr_t a = (uintptr_t)p, lo = (uintptr_t)json_arena;

	return a >= lo && a < lo + JSON_ARENA_SIZE;
}

static void *
json_alloc(size_t n)
{
	size_t need = (n + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);

	if (n > 0 && need >= n && need <= JSON_ARENA_SIZE - json_arena_used) {
		void *p = json_arena + json_arena_used;

		json_arena_used += need;
		return p;
	}
	return malloc(n);
}

static void
json_dealloc(void *p)
{
	if (p == NULL || json_in_arena(p))
		return;
	crypto_wipe(p, malloc_usable_size(p));
	free(p);
}

static void
json_hook(void)
{
	cJSON_Hooks hooks = { json_alloc, json_dealloc };

	if (!json_hooked) {
		cJSON_InitHooks(&hooks);
		json_hooked = 1;
	}
}

void
json_arena_reset(void)
{
	crypto_wipe(json_arena, json_arena_used);
	json_arena_used = 0;
}

/*
 * cJSON accepts invalid UTF-8, decodes \u0000 into an early terminator and
 * only limits nesting at 1000, so one pass over the raw bytes refuses those
 * before cJSON sees them.
 */
static int
json_hex4(const char *p, const char *end, unsigned *out)
{
	unsigned v = 0;
	int i;

	if (end - p < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* Length of the valid UTF-8 sequence at p, or 0 if invalid. */
static size_t
json_utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned char c = p[0];
	size_t n, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else
		return 0;
	if ((size_t)(end - p) < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/*
 * Length of the JSON number at p (RFC 8259 grammar), 0 when it is not one:
 * cJSON's strtod would also take "01", "1." and "1.e5".
 */
static size_t
json_number_len(const char *p, const char *end)
{
	const char *q = p;

#define DIGIT(x) ((x) < end && *(x) >= '0' && *(x) <= '9')
	if (q < end && *q == '-')
		q++;
	if (q < end && *q == '0')
		q++;
	else if (DIGIT(q))
		while (DIGIT(q))
			q++;
	else
		return 0;
	if (q < end && *q == '.') {
		if (!DIGIT(q + 1))
			return 0;
		q++;
		while (DIGIT(q))
			q++;
	}
	if (q < end && (*q == 'e' || *q == 'E')) {
		q++;
		if (q < end && (*q == '+' || *q == '-'))
			q++;
		if (!DIGIT(q))
			return 0;
		while (DIGIT(q))
			q++;
	}
	/* "01" stops after the 0: a digit right after a number is not JSON. */
	if (DIGIT(q) || (q < end && *q == '.'))
		return 0;
#undef DIGIT
	return (size_t)(q - p);
}

static int
json_prescan(const char *body, size_t len)
{
	const char *p = body, *end = body + len;
	int in_string = 0, depth = 0;

	while (p < end) {
		unsigned char c = (unsigned char)*p;

		if (c == 0)
			return -1;
		if (c >= 0x80) {
			size_t n = json_utf8_len((const unsigned char *)p, (const unsigned char *)end);
			if (n == 0)
				return -1;
			p += n;
			continue;
		}
		if (!in_string) {
			if (c == '-' || (c >= '0' && c <= '9')) {
				size_t n = json_number_len(p, end);
				if (n == 0)
					return -1;
				p += n;
				continue;
			}
			if (c == '"')
				in_string = 1;
			else if (c == '{' || c == '[') {
				if (++depth > JSON_MAX_DEPTH)
					return -1;
			} else if (c == '}' || c == ']')
				depth--;
			p++;
			continue;
		}
		if (c < 0x20)
			return -1; /* control characters must be escaped inside strings */
		if (c == '"') {
			in_string = 0;
			p++;
		} else if (c == '\\') {
			unsigned u, lo;

			if (p + 1 >= end)
				return -1;
			if (p[1] != 'u') {
				p += 2;
				continue;
			}
			if (json_hex4(p + 2, end, &u) != 0 || u == 0)
				return -1;
			p += 6;
			if (u >= 0xdc00 && u <= 0xdfff)
				return -1; /* lone low surrogate */
			if (u >= 0xd800 && u <= 0xdbff) {
				if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
				    json_hex4(p + 2, end, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
					return -1;
				p += 6;
			}
		} else
			p++;
	}
	return 0;
}

static int
json_has_duplicates(const cJSON *node)
{
	const cJSON *a, *b;

	for (a = node->child; a != NULL; a = a->next) {
		if (cJSON_IsObject(node))
			for (b = a->next; b != NULL; b = b->next)
				if (strcmp(a->string, b->string) == 0)
					return 1;
		if ((cJSON_IsObject(a) || cJSON_IsArray(a)) && json_has_duplicates(a))
			return 1;
	}
	return 0;
}

static char *
json_strdup(const char *s, size_t len)
{
	char *d = malloc(len + 1);

	if (d != NULL) {
		memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
}

/*
 * Take item as the value of field f into v. KG_OK when it fits; KG_EINPUT
 * when it does not, with *why the problem to report ("wrong_type",
 * "too_long"); KG_ENOMEM when a copy cannot be made. What it stored in v
 * on failure is freed by json_values_free.
 */
static enum kg_err
json_take(const cJSON *item, const struct json_field *f, struct json_value *v, const char **why)
{
	const cJSON *e;
	size_t n = 0;

	*why = NULL;
	switch (f->type) {
	case JF_BOOL:
		if (!cJSON_IsBool(item)) {
			*why = "wrong_type";
			return KG_EINPUT;
		}
		v->boolean = cJSON_IsTrue(item);
		break;
	case JF_INT:
		if (!cJSON_IsNumber(item)) {
			*why = "wrong_type";
			return KG_EINPUT;
		}
		/* A whole number in range: 1.5, -1, 1e300 are not counts of seconds. */
		if (!(item->valuedouble >= 0 && item->valuedouble <= (double)f->max_len) ||
		    item->valuedouble != (double)(long long)item->valuedouble) {
			*why = item->valuedouble > (double)f->max_len ? "too_long" : "invalid";
			return KG_EINPUT;
		}
		v->num = (long long)item->valuedouble;
		break;
	case JF_STRING:
		if (!cJSON_IsString(item)) {
			*why = "wrong_type";
			return KG_EINPUT;
		}
		v->len = strlen(item->valuestring);
		if (v->len > f->max_len) {
			*why = "too_long";
			return KG_EINPUT;
		}
		v->str = json_strdup(item->valuestring, v->len);
		if (v->str == NULL)
			return KG_ENOMEM;
		break;
	case JF_STRINGS:
		if (!cJSON_IsArray(item)) {
			*why = "wrong_type";
			return KG_EINPUT;
		}
		cJSON_ArrayForEach(e, item) {
			if (!cJSON_IsString(e)) {
				*why = "wrong_type";
				return KG_EINPUT;
			}
			if (strlen(e->valuestring) > f->max_len || ++n > JSON_MAX_STRINGS) {
				*why = "too_long";
				return KG_EINPUT;
			}
		}
		v->strv = calloc(n + 1, sizeof(char *));
		if (v->strv == NULL)
			return KG_ENOMEM;
		cJSON_ArrayForEach(e, item) {
			v->strv[v->n] = json_strdup(e->valuestring, strlen(e->valuestring));
			if (v->strv[v->n] == NULL)
				return KG_ENOMEM;
			v->n++;
		}
		break;
	}
	v->present = 1;
	return KG_OK;
}

enum kg_err
json_parse_fields(const char *body, size_t len, const struct json_field *fields, size_t n,
    struct json_value *out, struct json_obj **errors)
{
	cJSON *root = NULL;
	struct json_obj *errs = NULL;
	enum kg_err err = KG_EJSON;
	size_t i;

	*errors = NULL;
	memset(out, 0, n * sizeof(*out));
	json_hook();
	if (len == 0) {
		root = cJSON_CreateObject();
		if (root == NULL) {
			err = KG_ENOMEM;
			goto out;
		}
	} else {
		if (json_prescan(body, len) != 0)
			goto out;
		const char *end = NULL;

		root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
		if (root == NULL || !cJSON_IsObject(root) || json_has_duplicates(root))
			goto out;
		/* One value and nothing after it but white space. */
		while (end < body + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
			end++;
		if (end != body + len)
			goto out;
	}
	for (i = 0; i < n; i++) {
		const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, fields[i].name);
		const char *why = NULL;
		enum kg_err took = KG_OK;

		if (item == NULL || cJSON_IsNull(item)) {
			if (fields[i].required)
				why = "required";
		} else
			took = json_take(item, &fields[i], &out[i], &why);
		if (took == KG_ENOMEM) {
			err = KG_ENOMEM;
			goto out;
		}
		if (why == NULL)
			continue;
		if (errs == NULL && (errs = json_obj_new()) == NULL) {
			err = KG_ENOMEM;
			goto out;
		}
		json_set_str(errs, fields[i].name, why);
	}
	err = errs == NULL ? KG_OK : KG_EINPUT;
out:
	if (err != KG_OK)
		json_values_free(out, n);
	if (err == KG_EINPUT) {
		*errors = errs;
		errs = NULL;
	}
	json_free(errs);
	cJSON_Delete(root);
	return err;
}

void
json_values_free(struct json_value *v, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		crypto_free_secret(v[i].str);
		if (v[i].strv != NULL) {
			for (j = 0; j < v[i].n; j++)
				crypto_free_secret(v[i].strv[j]);
			free(v[i].strv);
		}
		memset(&v[i], 0, sizeof(v[i]));
	}
}

static struct json_obj *
json_wrap(cJSON *node)
{
	struct json_obj *o;

	if (node == NULL)
		return NULL;
	o = json_alloc(sizeof(*o));
	if (o == NULL) {
		cJSON_Delete(node);
		return NULL;
	}
	o->node = node;
	o->failed = 0;
	return o;
}

struct json_obj *
json_obj_new(void)
{
	json_hook();
	return json_wrap(cJSON_CreateObject());
}

struct json_obj *
json_arr_new(void)
{
	json_hook();
	return json_wrap(cJSON_CreateArray());
}

void
json_free(struct json_obj *o)
{
	if (o == NULL)
		return;
	cJSON_Delete(o->node);
	json_dealloc(o);
}

/* Replace any earlier member of the same name: replies never carry duplicates. */
static void
json_put(struct json_obj *o, const char *key, cJSON *item)
{
	if (item == NULL) {
		o->failed = 1;
		return;
	}
	if (key == NULL) {
		if (!cJSON_AddItemToArray(o->node, item)) {
			cJSON_Delete(item);
			o->failed = 1;
		}
		return;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(o->node, key);
	if (!cJSON_AddItemToObject(o->node, key, item)) {
		cJSON_Delete(item);
		o->failed = 1;
	}
}

void
json_set_str(struct json_obj *o, const char *key, const char *val)
{
	if (o != NULL)
		json_put(o, key, val == NULL ? cJSON_CreateNull() : cJSON_CreateString(val));
}

void
json_set_int(struct json_obj *o, const char *key, long long val)
{
	char digits[24];
	char *p = digits + sizeof(digits) - 1;
	/* Negated as unsigned: -LLONG_MIN does not fit a long long. */
	unsigned long long u = val < 0 ? 0ULL - (unsigned long long)val : (unsigned long long)val;

	if (o == NULL)
		return;
	/* Raw digits (a double would round integers above 2^53), without a printf per field. */
	*p = '\0';
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (val < 0)
		*--p = '-';
	json_put(o, key, cJSON_CreateRaw(p));
}

void
json_set_bool(struct json_obj *o, const char *key, int val)
{
	if (o != NULL)
		json_put(o, key, cJSON_CreateBool(val));
}

void
json_set_strv(struct json_obj *o, const char *key, const char *const *v, size_t n)
{
	cJSON *arr;
	size_t i;

	if (o == NULL)
		return;
	arr = cJSON_CreateArray();
	for (i = 0; arr != NULL && i < n; i++) {
		cJSON *s = cJSON_CreateString(v[i]);
		if (s == NULL || !cJSON_AddItemToArray(arr, s)) {
			cJSON_Delete(s);
			cJSON_Delete(arr);
			arr = NULL;
		}
	}
	json_put(o, key, arr);
}

void
json_set_obj(struct json_obj *o, const char *key, struct json_obj *child)
{
	if (o == NULL) {
		json_free(child);
		return;
	}
	if (child == NULL) {
		o->failed = 1;
		return;
	}
	if (child->failed)
		o->failed = 1;
	json_put(o, key, child->node);
	json_dealloc(child);
}

const char *
json_get_str(const struct json_obj *o, const char *key)
{
	const cJSON *item = o == NULL ? NULL : cJSON_GetObjectItemCaseSensitive(o->node, key);

	return cJSON_IsString(item) ? item->valuestring : NULL;
}

int
json_has(const struct json_obj *o, const char *key)
{
	return o != NULL && cJSON_GetObjectItemCaseSensitive(o->node, key) != NULL;
}

enum kg_err
json_render(const struct json_obj *o, char **out, size_t *outlen)
{
	char *s, *copy = NULL;
	size_t len;

	*out = NULL;
	*outlen = 0;
	if (o == NULL || o->failed)
		return KG_ENOMEM;
	s = cJSON_PrintUnformatted(o->node);
	if (s == NULL)
		return KG_ENOMEM;
	/* The caller frees with free(): out of the arena. */
	len = strlen(s);
	copy = json_strdup(s, len);
	json_dealloc(s);
	if (copy == NULL)
		return KG_ENOMEM;
	*out = copy;
	*outlen = len;
	return KG_OK;
}

enum kg_err
json_render_buf(const struct json_obj *o, char *buf, size_t bufsz, size_t *outlen)
{
	*outlen = 0;
	if (o == NULL || o->failed)
		return KG_ENOMEM;
	if (bufsz == 0 || bufsz > INT_MAX)
		return KG_ETOOLARGE;
	/* Fails, writing no further than bufsz, when the reply does not fit. */
	if (!cJSON_PrintPreallocated(o->node, buf, (int)bufsz, 0))
		return KG_ETOOLARGE;
	*outlen = strlen(buf);
	return KG_OK;
}
