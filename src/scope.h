/*
 * scope: what a scope is and what one implies (docs/API.md, "Scopes").
 *
 *   - A scope is 1 to 64 bytes: segments of A-Z a-z 0-9 _ . - joined by
 *     single colons ("files", "files:read", "notes:read:own"), or "*".
 *   - A scope implies itself and every scope below it: "files" implies
 *     "files:read" and "files:read:own"; "files:read" does not imply
 *     "files" nor "files:write". "*" implies every scope.
 *   - A set holds at most SCOPE_SET_MAX scopes, each once.
 *   - A user's granted set says what the user's tokens may carry; a
 *     token's own set is what it was issued with. What a token may do, its
 *     effective set, is its own set within the granted one as it is now
 *     (scope_effective): "*" stands for the whole granted set, a scope the
 *     grant implies stays, and a scope broader than what is still granted
 *     narrows to the grants below it. So ungranting narrows every token
 *     that carried the scope at once, without rewriting tokens.
 */
#ifndef SCOPE_H
#define SCOPE_H

#include <stddef.h>

#include "kg.h"

#define SCOPE_MAX 64
#define SCOPE_SET_MAX 16
/* "{a,b,...}": the PostgreSQL text[] literal of the largest set: braces, commas, NUL. */
#define SCOPE_TEXT_MAX (2 + SCOPE_SET_MAX * (SCOPE_MAX + 1))

struct scope_set {
	size_t n;
	char s[SCOPE_SET_MAX][SCOPE_MAX + 1];
};

/* 1 when s is a valid scope (the syntax above). */
int scope_valid(const char *s);

/* 1 when having scope have allows what scope want names. */
int scope_implies(const char *have, const char *want);

/* 1 when some scope of set implies want. */
int scope_set_allows(const struct scope_set *set, const char *want);

/*
 * The set of the n scopes v (duplicates dropped). KG_EINPUT when one is
 * invalid (*bad points at it) or there are more than SCOPE_SET_MAX.
 */
enum kg_err scope_set_parse(const char *const *v, size_t n, struct scope_set *out,
    const char **bad) KG_MUSTCHECK;

/* A space- or comma-separated list, as in the configuration (default_scopes). */
enum kg_err scope_set_parse_list(const char *list, struct scope_set *out) KG_MUSTCHECK;

/* The set stored as PostgreSQL's text form of a text[] ("{a,b}"); what does not fit is left out. */
void scope_set_from_text(const char *text, struct scope_set *out);

/* set as "{a,b}" into buf. KG_ESYS when bufsz is too small. */
enum kg_err scope_set_to_text(const struct scope_set *set, char *buf, size_t bufsz) KG_MUSTCHECK;

/* Add s to set unless it is there already; 0 when full. */
int scope_set_add(struct scope_set *set, const char *s);

/*
 * Of want, the scopes have does not allow, into missing (in want's order);
 * want's "*" stands for whatever have allows, and is never missing.
 */
void scope_set_missing(const struct scope_set *have, const struct scope_set *want,
    struct scope_set *missing);

/* A token's effective set: its own set within granted, as described above. */
void scope_effective(const struct scope_set *own, const struct scope_set *granted,
    struct scope_set *out);

/* Replace "*" in want by the scopes of have (a new token may not carry more than its maker). */
void scope_set_expand(const struct scope_set *want, const struct scope_set *have,
    struct scope_set *out);

#endif
