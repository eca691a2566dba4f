#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "scoreboard.h"

/*
 * One cache line a slot, written only by its worker (pid by the master):
 * workers on different cores never write to the same line per request.
 */
struct sb_slot {
	alignas(64) atomic_int pid;   /* 0 = free */
	atomic_int busy;
	atomic_llong requests;
	atomic_llong accepted;        /* by every worker that had the slot: never reset */
	atomic_llong request_start_ms; /* monotonic */
	atomic_llong request_start_wall; /* unix seconds, for reports */
};

struct sb_table {
	long long start_wall;
	atomic_int top;               /* slots [0, top) have ever been claimed */
	atomic_llong respawns;
	atomic_llong slow;
	atomic_int max_active;
	struct sb_slot slots[SCOREBOARD_MAX];
};

static struct sb_table *sb;
static int sb_self = -1;

enum kg_err
scoreboard_init(void)
{
	void *p;

	if (sb != NULL)
		return KG_OK;
	p = mmap(NULL, sizeof(*sb), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return KG_ESYS;
	sb = p;
	memset(sb, 0, sizeof(*sb));
	sb->start_wall = (long long)time(NULL);
	return KG_OK;
}

int
scoreboard_claim(pid_t pid)
{
	int i;

	for (i = 0; sb != NULL && i < SCOREBOARD_MAX; i++)
		if (atomic_load(&sb->slots[i].pid) == 0) {
			atomic_store(&sb->slots[i].busy, 0);
			atomic_store(&sb->slots[i].requests, 0);
			atomic_store(&sb->slots[i].request_start_ms, 0);
			atomic_store(&sb->slots[i].pid, (int)pid);
			if (atomic_load(&sb->top) < i + 1)
				atomic_store(&sb->top, i + 1);
			return i;
		}
	return -1;
}

void
scoreboard_set_pid(int slot, pid_t pid)
{
	if (sb != NULL && slot >= 0 && slot < SCOREBOARD_MAX)
		atomic_store(&sb->slots[slot].pid, (int)pid);
}

void
scoreboard_release(int slot)
{
	if (sb != NULL && slot >= 0 && slot < SCOREBOARD_MAX)
		atomic_store(&sb->slots[slot].pid, 0);
}

void
scoreboard_respawned(void)
{
	if (sb != NULL)
		atomic_fetch_add(&sb->respawns, 1);
}

long long
scoreboard_busy_since(int slot)
{
	if (sb == NULL || slot < 0 || slot >= SCOREBOARD_MAX || !atomic_load(&sb->slots[slot].busy))
		return 0;
	return atomic_load(&sb->slots[slot].request_start_ms);
}

void
scoreboard_attach(int slot)
{
	sb_self = slot;
}

static int
scoreboard_active(void)
{
	int i, n = 0, top = atomic_load_explicit(&sb->top, memory_order_relaxed);

	for (i = 0; i < top && i < SCOREBOARD_MAX; i++)
		if (atomic_load_explicit(&sb->slots[i].busy, memory_order_relaxed) &&
		    atomic_load_explicit(&sb->slots[i].pid, memory_order_relaxed) != 0)
			n++;
	return n;
}

/*
 * Per request, so nothing here locks a shared cache line: the figures are
 * for reports, read while workers write them, and need no ordering.
 */
void
scoreboard_request_begin(long long now_ms)
{
	struct sb_slot *s;
	int active, max;

	if (sb == NULL || sb_self < 0)
		return;
	s = &sb->slots[sb_self];
	atomic_store_explicit(&s->request_start_ms, now_ms, memory_order_relaxed);
	atomic_store_explicit(&s->request_start_wall, (long long)time(NULL), memory_order_relaxed);
	atomic_store_explicit(&s->busy, 1, memory_order_release);
	atomic_store_explicit(&s->accepted,
	    atomic_load_explicit(&s->accepted, memory_order_relaxed) + 1, memory_order_relaxed);
	active = scoreboard_active();
	max = atomic_load_explicit(&sb->max_active, memory_order_relaxed);
	while (active > max && !atomic_compare_exchange_weak(&sb->max_active, &max, active))
		;
}

void
scoreboard_request_end(int slow)
{
	struct sb_slot *s;

	if (sb == NULL || sb_self < 0)
		return;
	s = &sb->slots[sb_self];
	atomic_store_explicit(&s->busy, 0, memory_order_release);
	atomic_store_explicit(&s->requests,
	    atomic_load_explicit(&s->requests, memory_order_relaxed) + 1, memory_order_relaxed);
	if (slow)
		atomic_fetch_add(&sb->slow, 1);
}

void
scoreboard_report(struct json_obj *o)
{
	struct json_obj *pool, *workers;
	long long accepted = 0;
	int i, active = 0, idle = 0;

	if (sb == NULL)
		return;
	workers = json_arr_new();
	for (i = 0; i < SCOREBOARD_MAX; i++) {
		struct sb_slot *s = &sb->slots[i];
		struct json_obj *w;
		int pid = atomic_load(&s->pid), busy;

		accepted += atomic_load(&s->accepted);
		if (pid == 0)
			continue;
		busy = atomic_load(&s->busy);
		if (busy)
			active++;
		else
			idle++;
		w = json_obj_new();
		json_set_int(w, "pid", pid);
		json_set_str(w, "state", busy ? "busy" : "idle");
		json_set_int(w, "requests", atomic_load(&s->requests));
		if (busy) {
			json_set_int(w, "request_start", atomic_load(&s->request_start_wall));
			json_set_int(w, "request_ms", kg_monotonic_ms() - atomic_load(&s->request_start_ms));
		} else
			json_set_str(w, "request_start", NULL);
		json_set_obj(workers, NULL, w);
	}
	pool = json_obj_new();
	json_set_int(pool, "start_time", sb->start_wall);
	json_set_int(pool, "uptime", (long long)time(NULL) - sb->start_wall);
	json_set_int(pool, "accepted", accepted);
	json_set_int(pool, "active", active);
	json_set_int(pool, "idle", idle);
	json_set_int(pool, "max_active", atomic_load(&sb->max_active));
	json_set_int(pool, "respawns", atomic_load(&sb->respawns));
	json_set_int(pool, "slow_requests", atomic_load(&sb->slow));
	json_set_int(pool, "workers", active + idle);
	json_set_obj(o, "pool", pool);
	json_set_obj(o, "workers", workers);
}
