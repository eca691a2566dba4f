#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "admin.h"
#include "auth.h"
#include "conf.h"
#include "crypto.h"
#include "json.h"
#include "password.h"
#include "setup.h"

/* Events are recorded as coming from the command line, without an address. */
static struct auth_client admin_client = { NULL, "keygate-cli", 0, NULL };

/* Room for a stored value of up to 256 bytes, every byte escaped. */
#define ADMIN_SHOW_MAX (4 * 256 + 4)

/* One line per command, so that `keygate CMD [SUB] --help` shows its own. */
static const struct {
	const char *cmd, *sub, *args;
} admin_commands[] = {
	{ "user", "add", "NAME [--email E] [--password-stdin]" },
	{ "user", "passwd", "NAME [--password-stdin]" },
	{ "user", "disable", "NAME" },
	{ "user", "enable", "NAME" },
	{ "user", "list", "[--json]" },
	{ "user", "grant", "NAME SCOPE..." },
	{ "user", "ungrant", "NAME SCOPE..." },
	{ "token", "list", "NAME" },
	{ "token", "revoke", "NAME (--key KEY | --all)" },
	{ "events", NULL, "[--user NAME] [--since TIME] [--limit N]" },
	{ "prune", NULL, "" },
};

void
admin_usage_lines(FILE *f, const char *cmd, const char *sub)
{
	size_t i;

	for (i = 0; i < sizeof(admin_commands) / sizeof(admin_commands[0]); i++) {
		if (cmd != NULL && strcmp(admin_commands[i].cmd, cmd) != 0)
			continue;
		if (sub != NULL && admin_commands[i].sub != NULL &&
		    strcmp(admin_commands[i].sub, sub) != 0)
			continue;
		fprintf(f, "  keygate %s%s%s%s%s\n", admin_commands[i].cmd,
		    admin_commands[i].sub != NULL ? " " : "",
		    admin_commands[i].sub != NULL ? admin_commands[i].sub : "",
		    admin_commands[i].args[0] != '\0' ? " " : "", admin_commands[i].args);
	}
}

/* The usage of cmd (and sub), or of every command when cmd is NULL. */
static int
admin_usage_of(FILE *f, const char *cmd, const char *sub, int rc)
{
	fputs("usage:\n", f);
	admin_usage_lines(f, cmd, sub);
	if (cmd == NULL || strcmp(cmd, "user") == 0)
		fputs("Passwords are read from the terminal without echo, or with --password-stdin\n"
		    "as one line from standard input.\n", f);
	fputs("Exit status: 0 ok, 1 usage or data error, 2 database unreachable.\n", f);
	return rc;
}

/*
 * A stored value as it may reach the administrator's terminal: printable
 * ASCII as it is, '\\' and '"' escaped, every other byte (control
 * characters, ESC, UTF-8) as \xNN, so that no value a client chose can
 * drive the terminal. Too long for out: cut, ending in "...".
 */
static const char *
admin_show(const char *s, char *out, size_t outsz)
{
	size_t used = 0;

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		char one[5];
		size_t n;

		if (c == '\\' || c == '"')
			(void)snprintf(one, sizeof(one), "\\%c", c);
		else if (c >= 0x20 && c < 0x7f)
			(void)snprintf(one, sizeof(one), "%c", c);
		else
			(void)snprintf(one, sizeof(one), "\\x%02x", c);
		n = strlen(one);
		if (used + n + 4 > outsz) {
			(void)snprintf(out + used, outsz - used, "...");
			return out;
		}
		memcpy(out + used, one, n);
		used += n;
	}
	out[used] = '\0';
	return out;
}

static int
admin_usage(FILE *f, int rc)
{
	return admin_usage_of(f, NULL, NULL, rc);
}

/* Map an error to a one-line message and an exit code. */
static int
admin_fail(const char *what, enum kg_err err)
{
	if (err == KG_EDB && auth_store_problem() == AUTH_STORE_UNMIGRATED) {
		fprintf(stderr, "keygate: %s: schema not migrated: run `keygate migrate`\n", what);
		return ADMIN_EDB;
	}
	if (err == KG_EDB && auth_store_problem() == AUTH_STORE_NO_ROLE && geteuid() == 0) {
		fprintf(stderr, "keygate: %s: PostgreSQL has no role for root: run as the keygate"
		    " user: runuser -u keygate -- keygate %s ...\n", what, what);
		return ADMIN_EDB;
	}
	if (err == KG_EDB) {
		fprintf(stderr, "keygate: %s: database unreachable\n", what);
		return ADMIN_EDB;
	}
	fprintf(stderr, "keygate: %s: %s\n", what, kg_strerror(err));
	return ADMIN_EUSAGE;
}

int
admin_is_command(const char *cmd)
{
	return strcmp(cmd, "user") == 0 || strcmp(cmd, "token") == 0 ||
	    strcmp(cmd, "events") == 0 || strcmp(cmd, "prune") == 0;
}

/* One line from f into a fresh buffer without its newline; NULL at EOF or error. */
static char *
admin_read_line(FILE *f, size_t *len)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, f);

	if (n < 0) {
		free(line);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	*len = (size_t)n;
	return line;
}

static char *
admin_prompt(const char *prompt, size_t *len)
{
	struct termios old, quiet;
	FILE *tty = fopen("/dev/tty", "r+");
	char *pw = NULL;

	if (tty == NULL)
		return NULL;
	/*
	 * Echo off first (dropping what was typed before the prompt), then the
	 * prompt: an answer typed as soon as the prompt shows is never flushed.
	 * The other order lost a password a program (or a fast typist) sent
	 * right after the prompt, and the command waited forever.
	 */
	if (tcgetattr(fileno(tty), &old) != 0)
		goto out;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	if (tcsetattr(fileno(tty), TCSAFLUSH, &quiet) != 0)
		goto out;
	fputs(prompt, tty);
	fflush(tty);
	pw = admin_read_line(tty, len);
	(void)tcsetattr(fileno(tty), TCSADRAIN, &old);
	fputs("\n", tty);
out:
	fclose(tty);
	return pw;
}

/*
 * The new password: from stdin, or asked twice on the terminal. cmd and
 * name ("user add", "alice") spell out the command to use without one.
 */
static char *
admin_password(int from_stdin, const char *cmd, const char *name, size_t *len)
{
	char *a, *b;
	size_t blen = 0;

	if (from_stdin) {
		if ((a = admin_read_line(stdin, len)) == NULL)
			fprintf(stderr, "keygate: no password on standard input\n");
		return a;
	}
	if (!isatty(STDIN_FILENO)) {
		fprintf(stderr, "keygate: no terminal to ask for the password on; give it on standard"
		    " input: printf '%%s\\n' \"$PASSWORD\" | keygate %s %s --password-stdin\n",
		    cmd, name);
		return NULL;
	}
	if ((a = admin_prompt("New password: ", len)) == NULL)
		return NULL;
	if ((b = admin_prompt("Repeat it: ", &blen)) == NULL || blen != *len ||
	    !crypto_equal(a, b, blen)) {
		fprintf(stderr, "keygate: the passwords do not match\n");
		crypto_free_secret(a);
		crypto_free_secret(b);
		return NULL;
	}
	crypto_free_secret(b);
	return a;
}

static int
admin_field_error(const struct auth_field_error *fe)
{
	fprintf(stderr, "keygate: %s: %s\n", fe->field, fe->reason);
	return ADMIN_EUSAGE;
}

static int
admin_user_add(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "email", required_argument, NULL, 'e' },
		{ "password-stdin", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct auth_field_error fe;
	const char *email = NULL;
	char *pw = NULL;
	size_t len = 0;
	long long id = 0;
	enum kg_err err;
	int ch, from_stdin = 0, rc = ADMIN_EUSAGE;

	while ((ch = getopt_long(argc, argv, "e:sh", opts, NULL)) != -1) {
		if (ch == 'e')
			email = optarg;
		else if (ch == 's')
			from_stdin = 1;
		else
			return admin_usage(ch == 'h' ? stdout : stderr, ch == 'h' ? 0 : ADMIN_EUSAGE);
	}
	if (optind + 1 != argc)
		return admin_usage(stderr, ADMIN_EUSAGE);
	if ((pw = admin_password(from_stdin, "user add", argv[optind], &len)) == NULL)
		goto out;
	err = auth_register(argv[optind], email, pw, len, &admin_client, &id, &fe);
	if (err == KG_EINPUT && fe.field != NULL)
		rc = admin_field_error(&fe);
	else if (err != KG_OK)
		rc = admin_fail("user add", err);
	else {
		printf("user %s added with id %lld\n", argv[optind], id);
		rc = ADMIN_OK;
	}
out:
	crypto_free_secret(pw);
	return rc;
}

static int
admin_user_passwd(int argc, char **argv)
{
	struct auth_field_error fe;
	char *pw = NULL;
	size_t len = 0;
	long revoked = 0;
	enum kg_err err;
	int from_stdin = 0, rc = ADMIN_EUSAGE, i;
	const char *name = NULL;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--password-stdin") == 0)
			from_stdin = 1;
		else if (strcmp(argv[i], "--help") == 0)
			return admin_usage(stdout, ADMIN_OK);
		else if (argv[i][0] == '-' || name != NULL)
			return admin_usage(stderr, ADMIN_EUSAGE);
		else
			name = argv[i];
	}
	if (name == NULL)
		return admin_usage(stderr, ADMIN_EUSAGE);
	if ((pw = admin_password(from_stdin, "user passwd", name, &len)) == NULL)
		goto out;
	err = auth_set_password(name, pw, len, &admin_client, &revoked, &fe);
	if (err == KG_EINPUT && fe.field != NULL)
		rc = admin_field_error(&fe);
	else if (err == KG_ENOTFOUND) {
		fprintf(stderr, "keygate: no such user: %s\n", name);
	} else if (err != KG_OK)
		rc = admin_fail("user passwd", err);
	else {
		printf("password of %s changed; %ld token(s) revoked\n", name, revoked);
		rc = ADMIN_OK;
	}
out:
	crypto_free_secret(pw);
	return rc;
}

static int
admin_user_state(int argc, char **argv, int disabled)
{
	enum kg_err err;

	if (argc != 2 || argv[1][0] == '-')
		return admin_usage(argc == 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr,
		    argc == 2 && strcmp(argv[1], "--help") == 0 ? ADMIN_OK : ADMIN_EUSAGE);
	err = auth_set_disabled(argv[1], disabled, &admin_client);
	if (err == KG_ENOTFOUND) {
		fprintf(stderr, "keygate: no such user: %s\n", argv[1]);
		return ADMIN_EUSAGE;
	}
	if (err != KG_OK)
		return admin_fail(disabled ? "user disable" : "user enable", err);
	printf("user %s %s\n", argv[1], disabled ? "disabled" : "enabled");
	return ADMIN_OK;
}

static void
admin_user_row(void *arg, const char *const *cols, size_t n)
{
	struct json_obj *arr = arg;
	char name[ADMIN_SHOW_MAX], email[ADMIN_SHOW_MAX];

	struct scope_set granted;
	char scopes[SCOPE_TEXT_MAX];

	if (n < 7)
		return;
	scope_set_from_text(cols[6], &granted);
	if (arr == NULL) {
		/* Space-separated, as they are granted: never a client's bytes. */
		size_t i, used = 0;

		scopes[0] = '\0';
		for (i = 0; i < granted.n; i++) {
			int w = snprintf(scopes + used, sizeof(scopes) - used, "%s%s",
			    i ? " " : "", granted.s[i]);
			if (w < 0 || (size_t)w >= sizeof(scopes) - used)
				break;
			used += (size_t)w;
		}
		printf("%-8s %-24s %-32s %-9s %-21s %-6s %s\n", cols[0],
		    admin_show(cols[1], name, sizeof(name)),
		    cols[2][0] ? admin_show(cols[2], email, sizeof(email)) : "-",
		    cols[3][0] == 't' ? "disabled" : "active", cols[4], cols[5],
		    granted.n > 0 ? scopes : "-");
		return;
	}
	struct json_obj *o = json_obj_new();
	json_set_int(o, "id", strtoll(cols[0], NULL, 10));
	json_set_str(o, "username", cols[1]);
	json_set_str(o, "email", cols[2][0] ? cols[2] : NULL);
	json_set_bool(o, "disabled", cols[3][0] == 't');
	json_set_str(o, "created_at", cols[4]);
	json_set_int(o, "tokens", strtoll(cols[5], NULL, 10));
	{
		const char *v[SCOPE_SET_MAX];
		size_t i;

		for (i = 0; i < granted.n; i++)
			v[i] = granted.s[i];
		json_set_strv(o, "granted_scopes", v, granted.n);
	}
	json_set_obj(arr, NULL, o);
}

static int
admin_user_list(int argc, char **argv)
{
	struct json_obj *arr = NULL;
	char *out = NULL;
	size_t len;
	enum kg_err err;
	int rc;

	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json") != 0))
		return admin_usage(stderr, ADMIN_EUSAGE);
	if (argc == 2)
		arr = json_arr_new();
	else
		printf("%-8s %-24s %-32s %-9s %-21s %-6s %s\n", "ID", "USERNAME", "EMAIL",
		    "STATE", "CREATED", "TOKENS", "GRANTED");
	err = auth_user_list(admin_user_row, arr);
	if (err != KG_OK)
		rc = admin_fail("user list", err);
	else if (arr != NULL && json_render(arr, &out, &len) != KG_OK)
		rc = admin_fail("user list", KG_ENOMEM);
	else {
		if (out != NULL)
			printf("%s\n", out);
		rc = ADMIN_OK;
	}
	free(out);
	json_free(arr);
	return rc;
}

/* keygate user grant|ungrant NAME SCOPE...: what the user's tokens may carry. */
static int
admin_user_grant(int argc, char **argv, int grant)
{
	const char *what = grant ? "user grant" : "user ungrant", *bad = NULL;
	struct scope_set want, now;
	char text[SCOPE_TEXT_MAX];
	enum kg_err err;

	if (argc < 3)
		return admin_usage(stderr, ADMIN_EUSAGE);
	if (scope_set_parse((const char *const *)(argv + 2), (size_t)(argc - 2), &want, &bad) !=
	    KG_OK) {
		fprintf(stderr, "keygate: %s: not a scope, or more than %d: %s\n", what,
		    SCOPE_SET_MAX, bad != NULL ? bad : "");
		return ADMIN_EUSAGE;
	}
	err = auth_grant(argv[1], &want, grant, &admin_client, &now, &bad);
	if (err == KG_ENOTFOUND) {
		fprintf(stderr, "keygate: no such user: %s\n", argv[1]);
		return ADMIN_EUSAGE;
	}
	if (err == KG_EINPUT && grant) {
		fprintf(stderr, "keygate: %s: more than %d scopes granted with %s\n", what,
		    SCOPE_SET_MAX, bad != NULL ? bad : "");
		return ADMIN_EUSAGE;
	}
	if (err == KG_EINPUT) {
		fprintf(stderr,
		    "keygate: %s: %s is granted through a broader scope: ungrant that"
		    " one (and grant what should stay)\n",
		    what, bad != NULL ? bad : "");
		return ADMIN_EUSAGE;
	}
	if (err != KG_OK)
		return admin_fail(what, err);
	if (scope_set_to_text(&now, text, sizeof(text)) != KG_OK)
		text[0] = '\0';
	printf("user %s now granted %s\n", argv[1], now.n > 0 ? text : "{} (nothing)");
	return ADMIN_OK;
}

static int
admin_user(int argc, char **argv)
{
	if (argc < 2)
		return admin_usage(stderr, ADMIN_EUSAGE);
	if (strcmp(argv[1], "add") == 0)
		return admin_user_add(argc - 1, argv + 1);
	if (strcmp(argv[1], "passwd") == 0)
		return admin_user_passwd(argc - 1, argv + 1);
	if (strcmp(argv[1], "disable") == 0)
		return admin_user_state(argc - 1, argv + 1, 1);
	if (strcmp(argv[1], "enable") == 0)
		return admin_user_state(argc - 1, argv + 1, 0);
	if (strcmp(argv[1], "list") == 0)
		return admin_user_list(argc - 1, argv + 1);
	if (strcmp(argv[1], "grant") == 0 || strcmp(argv[1], "ungrant") == 0)
		return admin_user_grant(argc - 1, argv + 1, strcmp(argv[1], "grant") == 0);
	if (strcmp(argv[1], "--help") == 0)
		return admin_usage(stdout, ADMIN_OK);
	return admin_usage(stderr, ADMIN_EUSAGE);
}

static int
admin_find_user(const char *name, struct auth_user *u)
{
	enum kg_err err = auth_user_find(name, u);

	if (err == KG_ENOTFOUND) {
		fprintf(stderr, "keygate: no such user: %s\n", name);
		return ADMIN_EUSAGE;
	}
	if (err != KG_OK)
		return admin_fail("user", err);
	return ADMIN_OK;
}

static int
admin_token(int argc, char **argv)
{
	struct auth_token_info *rows = NULL;
	struct auth_user u;
	size_t i, n = 0;
	long revoked = 0;
	enum kg_err err;
	int rc;

	if (argc >= 2 && strcmp(argv[1], "--help") == 0)
		return admin_usage(stdout, ADMIN_OK);
	if (argc == 3 && strcmp(argv[1], "list") == 0) {
		if ((rc = admin_find_user(argv[2], &u)) != ADMIN_OK)
			return rc;
		if ((err = auth_tokens(u.id, &rows, &n)) != KG_OK)
			return admin_fail("token list", err);
		printf("%-28s %-7s %-20s %-21s %-21s %-21s %s\n", "KEY", "KIND", "NAME",
		    "CREATED", "LAST USED", "EXPIRES", "IP");
		for (i = 0; i < n; i++) {
			char name[ADMIN_SHOW_MAX];

			printf("%-28s %-7s %-20s %-21s %-21s %-21s %s\n", rows[i].key,
			    rows[i].api ? "api" : "session",
			    rows[i].api ? admin_show(rows[i].name, name, sizeof(name)) : "-",
			    rows[i].created_at, rows[i].last_used_at, rows[i].expires_at,
			    rows[i].ip[0] ? rows[i].ip : "-");
		}
		free(rows);
		return ADMIN_OK;
	}
	if (argc >= 4 && strcmp(argv[1], "revoke") == 0) {
		if ((rc = admin_find_user(argv[2], &u)) != ADMIN_OK)
			return rc;
		if (argc == 4 && strcmp(argv[3], "--all") == 0) {
			if ((err = auth_revoke_all(u.id, u.username, &admin_client, &revoked)) != KG_OK)
				return admin_fail("token revoke", err);
			printf("%ld token(s) of %s revoked\n", revoked, u.username);
			return ADMIN_OK;
		}
		if (argc == 5 && strcmp(argv[3], "--key") == 0) {
			err = auth_revoke(u.id, u.username, argv[4], &admin_client);
			if (err == KG_ENOTFOUND) {
				fprintf(stderr, "keygate: %s has no token %s\n", u.username, argv[4]);
				return ADMIN_EUSAGE;
			}
			if (err != KG_OK)
				return admin_fail("token revoke", err);
			printf("token %s of %s revoked\n", argv[4], u.username);
			return ADMIN_OK;
		}
	}
	return admin_usage(stderr, ADMIN_EUSAGE);
}

static void
admin_event_row(void *arg, const char *const *cols, size_t n)
{
	char name[ADMIN_SHOW_MAX], ip[ADMIN_SHOW_MAX], ua[ADMIN_SHOW_MAX];

	(void)arg;
	if (n < 7)
		return;
	printf("%s %-16s user_id=%s username=%s ip=%s ua=\"%s\"", cols[0], cols[1],
	    cols[2][0] ? cols[2] : "-", cols[3][0] ? admin_show(cols[3], name, sizeof(name)) : "-",
	    cols[4][0] ? admin_show(cols[4], ip, sizeof(ip)) : "-",
	    admin_show(cols[5], ua, sizeof(ua)));
	/* One row stands for a whole block's refusals (login_throttled). */
	if (strcmp(cols[6], "1") != 0)
		printf(" count=%s", cols[6]);
	/* What a grant, an ungrant or an API token's creation was about. */
	if (n > 7 && cols[7][0] != '\0') {
		char detail[ADMIN_SHOW_MAX];

		printf(" detail=\"%s\"", admin_show(cols[7], detail, sizeof(detail)));
	}
	printf("\n");
}

static int
admin_events(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "user", required_argument, NULL, 'u' },
		{ "since", required_argument, NULL, 's' },
		{ "limit", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *user = NULL, *since = NULL;
	long limit = 1000;
	char *end;
	enum kg_err err;
	int ch;

	while ((ch = getopt_long(argc, argv, "u:s:l:h", opts, NULL)) != -1) {
		if (ch == 'u')
			user = optarg;
		else if (ch == 's')
			since = optarg;
		else if (ch == 'l') {
			errno = 0;
			limit = strtol(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || limit < 1 || limit > 1000000)
				return admin_usage(stderr, ADMIN_EUSAGE);
		} else
			return admin_usage(ch == 'h' ? stdout : stderr, ch == 'h' ? 0 : ADMIN_EUSAGE);
	}
	if (optind != argc)
		return admin_usage(stderr, ADMIN_EUSAGE);
	err = auth_events(user, since, limit, admin_event_row, NULL);
	if (err == KG_EINPUT) {
		fprintf(stderr, "keygate: events: cannot read --since %s as a time\n", since ? since : "");
		return ADMIN_EUSAGE;
	}
	return err == KG_OK ? ADMIN_OK : admin_fail("events", err);
}

static int
admin_prune(int argc, char **argv)
{
	long counts[3] = { 0, 0, 0 };
	enum kg_err err;

	if (argc != 1)
		return admin_usage(argc == 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr,
		    argc == 2 && strcmp(argv[1], "--help") == 0 ? ADMIN_OK : ADMIN_EUSAGE);
	err = auth_prune(counts);
	if (err != KG_OK)
		return admin_fail("prune", err);
	printf("pruned %ld expired token(s), %ld throttle row(s), %ld old event(s)\n", counts[0],
	    counts[1], counts[2]);
	return ADMIN_OK;
}

int
admin_main(const struct conf *c, int argc, char **argv)
{
	int rc, i;

	/* --help anywhere answers at once, database or not, for the command asked about. */
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			const char *sub = NULL;
			size_t k;

			for (k = 0; k < sizeof(admin_commands) / sizeof(admin_commands[0]); k++)
				if (i > 1 && admin_commands[k].sub != NULL &&
				    strcmp(admin_commands[k].cmd, argv[0]) == 0 &&
				    strcmp(admin_commands[k].sub, argv[1]) == 0)
					sub = argv[1];
			return admin_usage_of(stdout, argv[0], sub, ADMIN_OK);
		}
	}
	if (setup_cli(c) != KG_OK)
		return ADMIN_EUSAGE;
	if (auth_store_ready() != KG_OK)
		return admin_fail(argv[0], KG_EDB);
	optind = 0; /* GNU getopt: start over, forgetting main's state */
	if (strcmp(argv[0], "user") == 0)
		rc = admin_user(argc, argv);
	else if (strcmp(argv[0], "token") == 0)
		rc = admin_token(argc, argv);
	else if (strcmp(argv[0], "events") == 0)
		rc = admin_events(argc, argv);
	else
		rc = admin_prune(argc, argv);
	auth_store_close();
	return rc;
}
