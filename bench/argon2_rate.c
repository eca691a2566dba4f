/*
 * argon2_rate: the login ceiling for bench/run.
 *
 *   argon2_rate [SECONDS]
 *
 * Hashes a fixed password with Argon2id (Debian's libargon2, in process) in
 * a loop for SECONDS (default 3) on one thread, then on one thread per
 * online core, and prints
 *
 *   argon2_hps_1thread: N
 *   argon2_hps_allcores: N
 *   argon2_threads_allcores: N
 *
 * Cost parameters come from the environment keygate reads them from:
 * KEYGATE_ARGON2_MEMORY (KiB, default 19456), KEYGATE_ARGON2_ITERATIONS
 * (default 2), KEYGATE_ARGON2_PARALLELISM (default 1). Salt and output
 * lengths are keygate's (16 and 32 bytes). A login verifies one hash, which
 * costs one hash computation: this rate is what logins cannot exceed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <argon2.h>

#define SALT_LEN 16
#define HASH_LEN 32
#define MAX_THREADS 256

struct params {
	uint32_t m_kib, t, p;
	double seconds;
};

struct worker {
	pthread_t tid;
	const struct params *p;
	double start;
	long hashes;
	double end;
	int rc;
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
env_u32(const char *name, uint32_t def, uint32_t *out)
{
	const char *s = getenv(name);
	char *end;
	unsigned long v;

	if (s == NULL || *s == '\0') {
		*out = def;
		return 0;
	}
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || v > UINT32_MAX) {
		fprintf(stderr, "argon2_rate: bad %s=%s\n", name, s);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

static void *
hash_loop(void *arg)
{
	struct worker *w = arg;
	static const char pw[] = "benchmark password, 32 bytes ok";
	unsigned char salt[SALT_LEN], out[HASH_LEN];
	double deadline = w->start + w->p->seconds;
	size_t i;

	for (i = 0; i < sizeof(salt); i++)
		salt[i] = (unsigned char)(i * 37 + (uintptr_t)w);
	do {
		w->rc = argon2id_hash_raw(w->p->t, w->p->m_kib, w->p->p, pw, sizeof(pw) - 1,
		    salt, sizeof(salt), out, sizeof(out));
		if (w->rc != ARGON2_OK)
			break;
		w->hashes++;
		salt[0]++;
	} while (now() < deadline);
	w->end = now();
	return NULL;
}

/* Run n threads for p->seconds; return hashes per second, or -1. */
static double
measure(const struct params *p, int n)
{
	struct worker w[MAX_THREADS];
	double start = now(), end = start;
	long total = 0;
	int i, started = 0, rc = 0;

	memset(w, 0, sizeof(w));
	for (i = 0; i < n; i++) {
		w[i].p = p;
		w[i].start = start;
		if (pthread_create(&w[i].tid, NULL, hash_loop, &w[i]) != 0) {
			rc = -1;
			break;
		}
		started++;
	}
	for (i = 0; i < started; i++) {
		pthread_join(w[i].tid, NULL);
		if (w[i].rc != ARGON2_OK) {
			fprintf(stderr, "argon2_rate: %s\n", argon2_error_message(w[i].rc));
			rc = -1;
		}
		total += w[i].hashes;
		if (w[i].end > end)
			end = w[i].end;
	}
	if (rc != 0 || end <= start)
		return -1;
	return total / (end - start);
}

int
main(int argc, char *argv[])
{
	struct params p;
	double one, all;
	long ncpu;
	char *end;

	p.seconds = 3;
	if (argc > 2) {
		fprintf(stderr, "usage: argon2_rate [SECONDS]\n");
		return 2;
	}
	if (argc == 2) {
		p.seconds = strtod(argv[1], &end);
		if (*argv[1] == '\0' || *end != '\0' || !(p.seconds > 0 && p.seconds <= 600)) {
			fprintf(stderr, "argon2_rate: SECONDS must be in (0, 600]\n");
			return 2;
		}
	}
	if (env_u32("KEYGATE_ARGON2_MEMORY", 19456, &p.m_kib) != 0 ||
	    env_u32("KEYGATE_ARGON2_ITERATIONS", 2, &p.t) != 0 ||
	    env_u32("KEYGATE_ARGON2_PARALLELISM", 1, &p.p) != 0)
		return 2;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	if (ncpu > MAX_THREADS)
		ncpu = MAX_THREADS;

	printf("argon2_params: m=%u t=%u p=%u\n", p.m_kib, p.t, p.p);
	fflush(stdout);
	if ((one = measure(&p, 1)) < 0)
		return 1;
	printf("argon2_hps_1thread: %.1f\n", one);
	fflush(stdout);
	if ((all = measure(&p, (int)ncpu)) < 0)
		return 1;
	printf("argon2_hps_allcores: %.1f\n", all);
	printf("argon2_threads_allcores: %ld\n", ncpu);
	return 0;
}
