#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "conf.h"
#include "db.h"
#include "fcgi.h"
#include "hashslot.h"
#include "log.h"
#include "master.h"
#include "scoreboard.h"
#include "setup.h"

#define CRASH_WINDOW_MS 2000
#define BACKOFF_MAX_MS 10000

struct worker {
	pid_t pid;
	int slot;
	unsigned gen;
	long long started_ms;
	int retiring;
};

static volatile sig_atomic_t worker_stop;
static unsigned worker_orphan_grace = 30;  /* request_timeout, for after the master died */
static struct worker pool[SCOREBOARD_MAX];
static unsigned pool_gen;
static char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

/*
 * SIGTERM/SIGINT: finish what is in hand, take nothing new. The handler
 * restarts interrupted calls, so a request whose parameters are still
 * arriving is read to the end; closing our copy of the listening socket
 * makes a restarted accept() fail at once, so an idle worker leaves, and
 * no new connection can reach this worker (the others keep theirs).
 */
static void
worker_on_term(int sig)
{
	(void)sig;
	worker_stop = 1;
	fcgi_shutdown_pending();
	(void)close(0);
}

/*
 * The master died (parent-death signal): nobody will enforce
 * request_timeout any more, so finish the current request if it comes
 * within that time, then let SIGALRM's default action end the process.
 */
static void
worker_on_orphan(int sig)
{
	(void)sig;
	worker_stop = 1;
	fcgi_shutdown_pending();
	(void)close(0);
	alarm(worker_orphan_grace);
}

/* Is fd a listening socket? */
static int
is_listener(int fd)
{
	struct stat st;
	int on = 0;
	socklen_t len = sizeof(on);

	if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
		return 0;
	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

/*
 * Who should own the socket file: listen_group's group if set; else, as
 * root with `user` set, that user and its group (so that a web server
 * running as that user can connect). -1 for what stays as bind made it.
 */
static int
listen_owner(const struct conf *c, uid_t *uid, gid_t *gid)
{
	struct passwd *pw;
	struct group *gr;

	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (c->listen_group[0] != '\0') {
		if ((gr = getgrnam(c->listen_group)) == NULL) {
			log_error("listen_group: no such group %s", c->listen_group);
			return -1;
		}
		*gid = gr->gr_gid;
	} else if (geteuid() == 0 && c->user[0] != '\0') {
		if ((pw = getpwnam(c->user)) == NULL) {
			log_error("user: no such user %s", c->user);
			return -1;
		}
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
	}
	return 0;
}

/*
 * Bind the unix socket at `listen` with its mode and owner set without
 * ever following a symbolic link: the mode comes from the umask at bind
 * (never wider, not even for a moment), the owner is set through an
 * O_PATH|O_NOFOLLOW descriptor of the file bind made, checked to be a
 * socket of ours. chmod/chown by path after bind would follow a symlink
 * that whoever can write the directory puts there meanwhile.
 */
static int
listen_unix(const struct conf *c)
{
	struct sockaddr_un sa;
	struct stat st;
	mode_t mode = (mode_t)(c->listen_mode & 0770), old;
	uid_t uid;
	gid_t gid;
	int fd = -1, node = -1, rc;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(c->listen) >= sizeof(sa.sun_path)) {
		log_error("listen: path too long: %s", c->listen);
		return -1;
	}
	memcpy(sa.sun_path, c->listen, strlen(c->listen) + 1);
	if (listen_owner(c, &uid, &gid) != 0)
		return -1;
	if (lstat(c->listen, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_error("listen: %s exists and is not a socket", c->listen);
			return -1;
		}
		(void)unlink(c->listen);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		log_warn("socket");
		return -1;
	}
	old = umask(0777 & ~mode);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	(void)umask(old);
	if (rc != 0) {
		log_warn("bind %s", c->listen);
		goto fail;
	}
	memcpy(unix_path, sa.sun_path, sizeof(unix_path)); /* both sun_path-sized */
	/* What is at the path now: the socket we made, or someone's substitute. */
	if ((node = open(c->listen, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0 || fstat(node, &st) != 0) {
		log_warn("listen: %s", c->listen);
		goto fail;
	}
	if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
		log_error("listen: %s was replaced right after bind; not touching it", c->listen);
		unix_path[0] = '\0';
		goto fail;
	}
	/* A default ACL on the directory replaces the umask: refuse a wider mode. */
	if ((st.st_mode & 0777) != mode) {
		log_error("listen: %s has mode %04o, not listen_mode %04o (a default ACL on its "
		    "directory?)", c->listen, (unsigned)(st.st_mode & 0777), (unsigned)mode);
		goto fail;
	}
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
	    fchownat(node, "", uid, gid, AT_EMPTY_PATH) != 0) {
		log_warn("listen: cannot give %s to %s", c->listen,
		    c->listen_group[0] != '\0' ? c->listen_group : c->user);
		goto fail;
	}
	close(node);
	return fd;
fail:
	if (node >= 0)
		close(node);
	if (unix_path[0] != '\0')
		(void)unlink(unix_path);
	unix_path[0] = '\0';
	close(fd);
	return -1;
}

static int
listen_inet(const struct conf *c)
{
	char host[256];
	const char *port, *colon = strrchr(c->listen, ':');
	struct addrinfo hints, *res = NULL, *ai;
	int fd = -1, on = 1, rc;
	size_t hlen;

	if (colon == NULL) {
		log_error("listen: expected a path or host:port, got %s", c->listen);
		return -1;
	}
	hlen = (size_t)(colon - c->listen);
	if (hlen >= sizeof(host))
		return -1;
	memcpy(host, c->listen, hlen);
	host[hlen] = '\0';
	if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
		memmove(host, host + 1, hlen - 2);
		host[hlen - 2] = '\0';
	}
	port = colon + 1;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res)) != 0) {
		log_error("listen %s: %s", c->listen, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == 0 &&
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		log_warn("bind %s", c->listen);
	freeaddrinfo(res);
	return fd;
}

/*
 * Put the listening socket on fd 0, where libfcgi looks for it: inherited
 * on fd 0 (spawn-fcgi, mod_fcgid, lighttpd bin-path, systemd
 * StandardInput=socket), passed by systemd as LISTEN_FDS, or bound here.
 */
static int
master_listen(const struct conf *c)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	int fd;

	if (is_listener(0)) {
		log_info("listening on the inherited socket (fd 0)");
		return 0;
	}
	if (pid != NULL && fds != NULL && atol(pid) == (long)getpid() && atoi(fds) >= 1) {
		if (!is_listener(3) || dup2(3, 0) < 0) {
			log_error("LISTEN_FDS: fd 3 is not a listening socket");
			return -1;
		}
		close(3);
		(void)unsetenv("LISTEN_PID");
		(void)unsetenv("LISTEN_FDS");
		(void)unsetenv("LISTEN_FDNAMES");
		log_info("listening on the socket passed by systemd");
		return 0;
	}
	fd = (c->listen[0] == '/' || c->listen[0] == '.') ? listen_unix(c) : listen_inet(c);
	if (fd < 0)
		return -1;
	if (listen(fd, c->backlog) != 0) {
		log_warn("listen %s", c->listen);
		close(fd);
		return -1;
	}
	if (dup2(fd, 0) < 0) {
		log_warn("dup2");
		close(fd);
		return -1;
	}
	close(fd);
	log_info("listening on %s", c->listen);
	return 0;
}

/* As root with `user` set: give up root for good (slowcgi, kfcgi). */
static int
master_drop_privileges(const struct conf *c)
{
	struct passwd *pw;

	if (geteuid() != 0 || c->user[0] == '\0')
		return 0;
	if ((pw = getpwnam(c->user)) == NULL) {
		log_error("user: no such user %s", c->user);
		return -1;
	}
	/* Root by choice (containers, test harnesses): said once, then served. */
	if (pw->pw_uid == 0) {
		log_warnx("user = %s: serving as root", c->user);
		return 0;
	}
	if (setgroups(1, &pw->pw_gid) != 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) != 0 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) != 0) {
		log_warn("cannot drop privileges to %s", c->user);
		return -1;
	}
	if (setuid(0) == 0) {
		log_error("privileges were not dropped");
		return -1;
	}
	return 0;
}

static void
worker_signals(void)
{
	struct sigaction sa;
	sigset_t none;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = worker_on_term;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = worker_on_orphan;
	(void)sigaction(SIGUSR2, &sa, NULL);
	sa.sa_flags = 0;
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGPIPE, &sa, NULL);
	(void)sigaction(SIGHUP, &sa, NULL);
	(void)sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	(void)sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
}

/* The master made the dummy hashes for unknown users; its workers inherit them. */
static int master_made_dummies;

static int
worker_main(const struct conf *c, int slot)
{
	long served;

	worker_signals();
	scoreboard_attach(slot);
	if (fcgi_init() != KG_OK) {
		log_error("FCGX_Init failed");
		return 1;
	}
	/* Connect now so the first request does not pay for it; failure is retried later. */
	if (db_ready() != KG_OK)
		log_warnx(db_schema_missing() ?
		    "requests get 503 until the schema is migrated" :
		    "database not reachable yet; requests get 503 until it is");
	else if (!master_made_dummies && auth_load_dummies() != KG_OK)
		log_warnx("cannot read the cost classes of the stored hashes; unknown users "
		    "cost the current Argon2 parameters");
	served = fcgi_serve(c, &worker_stop);
	log_debug("worker exiting after %ld requests", served);
	db_close();
	return 0;
}

static int
master_spawn(const struct conf *c)
{
	pid_t parent = getpid(), pid;
	int i, slot;

	for (i = 0; i < SCOREBOARD_MAX && pool[i].pid != 0; i++)
		;
	if (i == SCOREBOARD_MAX)
		return -1;
	/* Claim the slot before forking so the child knows it at once. */
	if ((slot = scoreboard_claim(parent)) < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		log_warn("fork");
		scoreboard_release(slot);
		return -1;
	}
	if (pid == 0) {
		/* Never outlive the master, even if it is killed with SIGKILL. */
		worker_orphan_grace = (unsigned)c->request_timeout;
		if (prctl(PR_SET_PDEATHSIG, SIGUSR2) != 0 || getppid() != parent)
			_exit(1);
		_exit(worker_main(c, slot));
	}
	scoreboard_set_pid(slot, pid);
	pool[i].pid = pid;
	pool[i].slot = slot;
	pool[i].gen = pool_gen;
	pool[i].started_ms = kg_monotonic_ms();
	pool[i].retiring = 0;
	return 0;
}

static void
master_signal_all(int sig)
{
	int i;

	for (i = 0; i < SCOREBOARD_MAX; i++)
		if (pool[i].pid != 0)
			(void)kill(pool[i].pid, sig);
}

/* Reap exited workers; returns 1 if one crashed soon after starting. */
static int
master_reap(int shutting_down)
{
	int status, crashed = 0, i;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < SCOREBOARD_MAX && pool[i].pid != pid; i++)
			;
		if (i == SCOREBOARD_MAX)
			continue;
		scoreboard_release(pool[i].slot);
		if (WIFSIGNALED(status)) {
			log_warnx("worker %ld killed by signal %d (%s)", (long)pid, WTERMSIG(status),
			    strsignal(WTERMSIG(status)));
		} else if (WEXITSTATUS(status) != 0)
			log_warnx("worker %ld exited with status %d", (long)pid, WEXITSTATUS(status));
		else
			log_debug("worker %ld exited", (long)pid);
		if ((WIFSIGNALED(status) || WEXITSTATUS(status) != 0) && !shutting_down &&
		    !pool[i].retiring) {
			if (kg_monotonic_ms() - pool[i].started_ms < CRASH_WINDOW_MS)
				crashed = 1;
			scoreboard_respawned();
		}
		memset(&pool[i], 0, sizeof(pool[i]));
	}
	return crashed;
}

static int
master_count(int current_gen, int retiring)
{
	int i, n = 0;

	for (i = 0; i < SCOREBOARD_MAX; i++)
		if (pool[i].pid != 0 && pool[i].retiring == retiring &&
		    (current_gen < 0 || (pool[i].gen == pool_gen) == current_gen))
			n++;
	return n;
}

/* Stop one worker gracefully: old generation first. */
static void
master_retire_one(int old_gen_only)
{
	int i;

	for (i = 0; i < SCOREBOARD_MAX; i++)
		if (pool[i].pid != 0 && !pool[i].retiring && (!old_gen_only || pool[i].gen != pool_gen)) {
			pool[i].retiring = 1;
			(void)kill(pool[i].pid, SIGTERM);
			return;
		}
}

static void
master_kill_stuck(const struct conf *c)
{
	long long now = kg_monotonic_ms();
	int i;

	for (i = 0; i < SCOREBOARD_MAX; i++) {
		long long since;

		if (pool[i].pid == 0)
			continue;
		since = scoreboard_busy_since(pool[i].slot);
		if (since != 0 && now - since > (long long)c->request_timeout * 1000) {
			log_warnx("worker %ld stuck in one request for over %ds: killing it",
			    (long)pool[i].pid, c->request_timeout);
			(void)kill(pool[i].pid, SIGKILL);
		}
	}
}

static void
master_reload(const char *conf_file, struct conf *c)
{
	struct conf next;
	char err[512], changed[256];

	if (conf_load(conf_file, &next, err, sizeof(err)) != KG_OK) {
		log_error("reload failed, keeping the old configuration: %s", err);
		return;
	}
	if (conf_keep_restart_keys(c, &next, changed, sizeof(changed)) > 0)
		log_warnx("reload: %s: change only on restart, the running values stay", changed);
	if (setup_worker(&next) != KG_OK) {
		log_error("reload failed, keeping the old configuration");
		if (setup_worker(c) != KG_OK)
			log_error("cannot restore the old configuration");
		return;
	}
	*c = next;
	pool_gen++;
	log_info("configuration reloaded; replacing workers one at a time");
}

static int
master_loop(const char *conf_file, struct conf *c)
{
	sigset_t set;
	siginfo_t info;
	struct timespec tick = { 0, 100 * 1000000 };
	long long shutdown_deadline = 0, respawn_at = 0;
	int backoff_ms = 0, shutting_down = 0, sig;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	for (;;) {
		long long now;

		sig = sigtimedwait(&set, &info, &tick);
		if (sig == SIGTERM || sig == SIGINT) {
			if (!shutting_down) {
				log_info("shutting down: draining workers");
				shutting_down = 1;
				shutdown_deadline = kg_monotonic_ms() + (long long)c->shutdown_timeout * 1000;
				master_signal_all(SIGTERM);
			}
		} else if (sig == SIGHUP && !shutting_down)
			master_reload(conf_file, c);
		if (master_reap(shutting_down)) {
			backoff_ms = backoff_ms == 0 ? 100 : backoff_ms * 2;
			if (backoff_ms > BACKOFF_MAX_MS)
				backoff_ms = BACKOFF_MAX_MS;
			respawn_at = kg_monotonic_ms() + backoff_ms;
			log_warnx("worker crashed soon after start; next respawn in %dms", backoff_ms);
		}
		now = kg_monotonic_ms();
		if (shutting_down) {
			if (master_count(-1, 0) + master_count(-1, 1) == 0)
				return 0;
			if (now > shutdown_deadline) {
				log_warnx("shutdown_timeout passed: killing remaining workers");
				master_signal_all(SIGKILL);
				shutdown_deadline = now + 60000;
			}
			continue;
		}
		master_kill_stuck(c);
		/* Keep `workers` live workers; spare a moment after a crash. */
		if (now >= respawn_at) {
			while (master_count(-1, 0) < c->workers)
				if (master_spawn(c) != 0)
					break;
			if (backoff_ms > 0 && now - respawn_at > CRASH_WINDOW_MS)
				backoff_ms = 0;
		}
		/* Rolling replacement after a reload: one old worker at a time. */
		if (master_count(-1, 1) == 0) {
			if (master_count(0, 0) > 0) {
				if (master_count(-1, 0) <= c->workers && master_spawn(c) != 0)
					continue;
				master_retire_one(1);
			} else if (master_count(-1, 0) > c->workers)
				master_retire_one(0);
		}
	}
}

int
master_run(const char *conf_file, struct conf *c)
{
	sigset_t set;
	int rc = 1;

	/*
	 * Root by accident is refused: a flaw in a worker would own the
	 * machine. systemd units run keygate as User=keygate; whoever starts
	 * it as root names the user to become (or user = root, deliberately).
	 */
	if (geteuid() == 0 && c->user[0] == '\0') {
		log_error("refusing to serve as root: set `user` (KEYGATE_USER) to the account "
		    "to run as after binding, or user = root to stay root");
		return 1;
	}
	if (setup_worker(c) != KG_OK)
		return 1;
	if (master_listen(c) != 0)
		return 1;
	if (master_drop_privileges(c) != 0)
		goto out;
	if (scoreboard_init() != KG_OK) {
		log_warn("scoreboard");
		goto out;
	}
	if (c->workers == 1) {
		/* mod_fcgid sends one request at a time to each process: no master needed. */
		int slot = scoreboard_claim(getpid());
		log_info("serving in single-process mode");
		rc = worker_main(c, slot);
		goto out;
	}
	/*
	 * The dummy hashes for unknown users (one per cost class of the stored
	 * hashes), made once here and inherited by every worker: a worker,
	 * respawned or recycled, then accepts at once instead of hashing up to
	 * four dummies first. Without the database now, each worker makes its
	 * own when it connects. The connection is not inherited.
	 */
	if (db_ready() == KG_OK && auth_load_dummies() == KG_OK)
		master_made_dummies = 1;
	db_close();
	/* A limit for speed, not safety: without it the pool still serves. */
	if (hashslot_init(c->hash_concurrency, c->argon2_parallelism) != KG_OK)
		log_warn("hash slots: semget; hashing without a limit");
	/* The master handles its signals synchronously in master_loop. */
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	(void)sigprocmask(SIG_BLOCK, &set, NULL);
	(void)signal(SIGPIPE, SIG_IGN);
	log_info("starting %d workers", c->workers);
	rc = master_loop(conf_file, c);
	log_info("stopped");
out:
	hashslot_destroy();
	if (unix_path[0] != '\0')
		(void)unlink(unix_path);
	return rc;
}
