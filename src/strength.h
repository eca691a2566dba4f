/*
 * strength: how many guesses a password would take an attacker who knows
 * how people choose passwords, as estimated by zxcvbn-c (dictionaries of
 * common passwords, names and English words, l33t substitutions, repeats,
 * sequences, keyboard patterns, dates). The only includer of zxcvbn.h.
 *
 * zxcvbn-c works on bytes and knows ASCII patterns only: every byte of a
 * non-ASCII character counts as a brute-force guess, so callers should
 * normalise (NFKC folds full-width letters to ASCII) before asking.
 */
#ifndef STRENGTH_H
#define STRENGTH_H

#include <stddef.h>

#include "kg.h"

#define STRENGTH_MAX_BYTES 1024   /* longest password strength_guesses_log10 takes */
#define STRENGTH_MAX_WORDS 8      /* most user dictionary words it takes */

/*
 * The base-10 logarithm of the number of guesses zxcvbn estimates for pw
 * (len bytes, need not be NUL-terminated) into *out. words is a
 * NULL-terminated array of words that count as dictionary words for this
 * password (matched ignoring case and l33t), such as the username; NULL
 * for none; NULL and empty entries end it early. KG_EINPUT when pw is NULL
 * with len > 0, longer than STRENGTH_MAX_BYTES, contains a NUL, or there
 * are more than STRENGTH_MAX_WORDS words. Deterministic: the same input
 * gives the same answer. Allocates nothing that outlives the call.
 */
enum kg_err strength_guesses_log10(const char *pw, size_t len, const char *const *words,
    double *out) KG_MUSTCHECK;

#endif
