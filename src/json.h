/*
 * json: the only includer of cJSON.h. Parses request bodies against field
 * tables and builds replies; handlers never touch raw JSON.
 */
#ifndef JSON_H
#define JSON_H

#include <stddef.h>

#include "kg.h"

#define JSON_MAX_DEPTH 8
#define JSON_MAX_STRINGS 16  /* elements of a string array */

/* JF_INT: a whole number from 0 to max_len (a JSON number without fraction or exponent part's worth). */
enum json_ftype { JF_STRING, JF_BOOL, JF_STRINGS, JF_INT };

/* One accepted field of a request body (cf. kcgi's struct kvalid). */
struct json_field {
	const char *name;
	enum json_ftype type;
	size_t max_len;   /* bytes, for strings and each array element */
	int required;
};

/* A parsed field; present == 0 when the body did not have it. */
struct json_value {
	int present;
	char *str;        /* JF_STRING, NUL-terminated, no embedded NUL */
	size_t len;
	int boolean;      /* JF_BOOL */
	long long num;    /* JF_INT */
	char **strv;      /* JF_STRINGS */
	size_t n;
};

struct json_obj;

/*
 * Parse body (len bytes; empty means {}) and pick out fields. On success the
 * n values in out are filled (release with json_values_free). Returns
 * KG_EJSON when the body is not a single acceptable JSON object (invalid
 * UTF-8, \u0000, duplicate keys, nesting over JSON_MAX_DEPTH), KG_EINPUT
 * when a field is missing, of the wrong type or too long; then *errors
 * (caller frees) maps field names to "required", "wrong_type", "too_long".
 */
enum kg_err json_parse_fields(const char *body, size_t len, const struct json_field *fields,
    size_t n, struct json_value *out, struct json_obj **errors) KG_MUSTCHECK;

/* Wipe and free what json_parse_fields stored in the n values. */
void json_values_free(struct json_value *v, size_t n);

/*
 * Reply building. Setters never fail visibly: an allocation failure marks the
 * object, and json_render then returns KG_ENOMEM. A NULL object is ignored.
 */
struct json_obj *json_obj_new(void);
struct json_obj *json_arr_new(void);
void json_free(struct json_obj *o);
void json_set_str(struct json_obj *o, const char *key, const char *val); /* NULL -> null */
void json_set_int(struct json_obj *o, const char *key, long long val);
void json_set_bool(struct json_obj *o, const char *key, int val);
void json_set_strv(struct json_obj *o, const char *key, const char *const *v, size_t n);
/* Attach child under key (or append to an array when key is NULL); takes ownership. */
void json_set_obj(struct json_obj *o, const char *key, struct json_obj *child);
/* The string member key of o, or NULL. */
const char *json_get_str(const struct json_obj *o, const char *key);
/* 1 when o has a member called key. */
int json_has(const struct json_obj *o, const char *key);
/* Render o as compact JSON into a fresh string (caller frees). */
enum kg_err json_render(const struct json_obj *o, char **out, size_t *outlen) KG_MUSTCHECK;
/*
 * Render o into buf (bufsz bytes, NUL-terminated): no allocation.
 * KG_ETOOLARGE when it does not fit (then use json_render), KG_ENOMEM when
 * building o failed.
 */
enum kg_err json_render_buf(const struct json_obj *o, char *buf, size_t bufsz, size_t *outlen)
    KG_MUSTCHECK;
/*
 * Give back (and wipe) every allocation cJSON made since the last reset.
 * Only when no JSON object is alive: a worker calls it after each request.
 */
void json_arena_reset(void);

#endif
