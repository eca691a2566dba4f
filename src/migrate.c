#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "db.h"
#include "log.h"
#include "migrate.h"

#define MIGRATE_MAX_FILES 1000
#define MIGRATE_MAX_SIZE (1024 * 1024)

static int
migrate_name_ok(const char *name)
{
	size_t n = strlen(name);
	int i;

	if (n < 10 || strcmp(name + n - 4, ".sql") != 0 || name[4] != '_')
		return 0;
	for (i = 0; i < 4; i++)
		if (name[i] < '0' || name[i] > '9')
			return 0;
	return 1;
}

static int
migrate_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static enum kg_err
migrate_read(const char *path, char **out)
{
	FILE *f = NULL;
	char *buf = NULL;
	size_t n;
	enum kg_err err = KG_ESYS;

	*out = NULL;
	if ((f = fopen(path, "r")) == NULL) {
		log_warn("%s", path);
		goto out;
	}
	if ((buf = malloc(MIGRATE_MAX_SIZE + 1)) == NULL) {
		err = KG_ENOMEM;
		goto out;
	}
	n = fread(buf, 1, MIGRATE_MAX_SIZE + 1, f);
	if (ferror(f) || n > MIGRATE_MAX_SIZE) {
		log_warnx("%s: unreadable or over 1 MiB", path);
		goto out;
	}
	buf[n] = '\0';
	*out = buf;
	buf = NULL;
	err = KG_OK;
out:
	free(buf);
	if (f != NULL)
		fclose(f);
	return err;
}

enum kg_err
migrate_run(const struct conf *c)
{
	char *names[MIGRATE_MAX_FILES];
	char path[CONF_STR_MAX + 256];
	char *sql = NULL;
	struct dirent *de;
	DIR *dir = NULL;
	size_t n = 0, i;
	int applied, count = 0;
	enum kg_err err = KG_ESYS;

	if ((dir = opendir(c->migrations_dir)) == NULL) {
		log_warn("migrations_dir %s", c->migrations_dir);
		return KG_ESYS;
	}
	while ((de = readdir(dir)) != NULL && n < MIGRATE_MAX_FILES)
		if (migrate_name_ok(de->d_name) && (names[n] = strdup(de->d_name)) != NULL)
			n++;
	qsort(names, n, sizeof(names[0]), migrate_cmp);
	if ((err = db_migrate_begin()) != KG_OK) {
		log_error("migrate: cannot reach the database");
		goto out;
	}
	for (i = 0; i < n; i++) {
		char version[5];
		int w;

		memcpy(version, names[i], 4);
		version[4] = '\0';
		if ((err = db_migrate_applied(version, &applied)) != KG_OK)
			goto out;
		if (applied)
			continue;
		w = snprintf(path, sizeof(path), "%s/%s", c->migrations_dir, names[i]);
		if (w < 0 || (size_t)w >= sizeof(path)) {
			err = KG_ESYS;
			goto out;
		}
		if ((err = migrate_read(path, &sql)) != KG_OK)
			goto out;
		if ((err = db_migrate_apply(version, sql)) != KG_OK) {
			log_error("migrate: %s failed; nothing of it was applied", names[i]);
			goto out;
		}
		free(sql);
		sql = NULL;
		log_info("migrate: applied %s", names[i]);
		count++;
	}
	log_info("migrate: %d applied, database is up to date", count);
	err = KG_OK;
out:
	db_migrate_end();
	free(sql);
	for (i = 0; i < n; i++)
		free(names[i]);
	closedir(dir);
	return err;
}
