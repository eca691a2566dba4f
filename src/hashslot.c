/*
 * Why a System V semaphore: semop's SEM_UNDO gives a slot back when the
 * process holding it dies, whatever kills it (the request_timeout
 * watchdog's SIGKILL included), so that no crash can shrink the pool's
 * hashing capacity. Neither a POSIX semaphore nor a counter in the
 * scoreboard does that without the master guessing who held what.
 *
 * Measured on the 2-core development machine (bench/argon2_rate's loop at
 * the default parameters): 4 threads hash at 0.93 of the rate of 2.
 */
#include <errno.h>
#include <sched.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <unistd.h>

#include "hashslot.h"
#include "json.h"
#include "log.h"

/* The caller defines it (POSIX, semctl(2)). */
union hashslot_semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

static int hashslot_id = -1;
static int hashslot_size;
static int hashslot_held;

/* CPUs this process may run on (taskset, CPUAffinity=), else those online. */
static int
hashslot_cpus(void)
{
	cpu_set_t set;
	long n;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

enum kg_err
hashslot_init(int n, int lanes)
{
	union hashslot_semun arg;
	int id;

	/* A hash of p lanes runs p threads: one per core between them all. */
	if (n <= 0)
		n = hashslot_cpus() / (lanes > 1 ? lanes : 1);
	if (n < 1)
		n = 1;
	if ((id = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600)) < 0)
		return KG_ESYS;
	arg.val = n;
	if (semctl(id, 0, SETVAL, arg) != 0) {
		(void)semctl(id, 0, IPC_RMID);
		return KG_ESYS;
	}
	hashslot_id = id;
	hashslot_size = n;
	return KG_OK;
}

void
hashslot_destroy(void)
{
	if (hashslot_id >= 0)
		(void)semctl(hashslot_id, 0, IPC_RMID);
	hashslot_id = -1;
}

/* Change the free count by delta; on failure stop using the slots (the master removed them). */
static int
hashslot_op(short delta)
{
	struct sembuf op;

	op.sem_num = 0;
	op.sem_op = delta;
	op.sem_flg = SEM_UNDO;
	while (semop(hashslot_id, &op, 1) != 0) {
		if (errno == EINTR)
			continue;
		log_warn("hash slots: semop");
		hashslot_id = -1;
		return -1;
	}
	return 0;
}

void
hashslot_take(void)
{
	if (hashslot_id < 0 || hashslot_held)
		return;
	if (hashslot_op(-1) == 0)
		hashslot_held = 1;
}

void
hashslot_give(void)
{
	if (!hashslot_held)
		return;
	hashslot_held = 0;
	if (hashslot_id >= 0)
		(void)hashslot_op(1);
}

void
hashslot_report(struct json_obj *o)
{
	struct json_obj *s;
	int free_, waiting;

	if (hashslot_id < 0)
		return;
	if ((free_ = semctl(hashslot_id, 0, GETVAL)) < 0 ||
	    (waiting = semctl(hashslot_id, 0, GETNCNT)) < 0)
		return;
	s = json_obj_new();
	json_set_int(s, "size", hashslot_size);
	json_set_int(s, "in_use", hashslot_size - free_);
	json_set_int(s, "waiting", waiting);
	json_set_obj(o, "hash_slots", s);
}
