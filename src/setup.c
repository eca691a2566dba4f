#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "auth.h"
#include "conf.h"
#include "db.h"
#include "log.h"
#include "password.h"
#include "setup.h"
#include "tokencheck.h"

enum kg_err
setup_cli(const struct conf *c)
{
	struct password_params pp = {
		.memory_kib = (uint32_t)c->argon2_memory,
		.iterations = (uint32_t)c->argon2_iterations,
		.parallelism = (uint32_t)c->argon2_parallelism,
		.min_length = (unsigned)c->password_min_length,
		.common_path = c->common_passwords,
		.min_guesses_log10 = (unsigned)c->password_min_guesses_log10,
	};
	enum kg_err err;

	if (log_setup(c->log_target, c->log_level) != 0)
		return KG_ECONFIG;
	if ((err = password_init(&pp)) != KG_OK) {
		log_error("passwords: cannot initialise (common_passwords = %s): %s",
		    c->common_passwords, kg_strerror(err));
		return err;
	}
	auth_configure(c);
	db_configure(c);
	return KG_OK;
}

enum kg_err
setup_worker(const struct conf *c)
{
	enum kg_err err;

	if ((err = setup_cli(c)) != KG_OK)
		return err;
	if ((err = api_configure(c)) != KG_OK) {
		log_error("handlers: cannot take the configuration: %s", kg_strerror(err));
		return err;
	}
	if ((err = tokencheck_configure((size_t)c->token_cache_size, c->token_cache_ttl,
	         c->touch_interval)) != KG_OK) {
		log_error("token cache: cannot allocate %ld entries", c->token_cache_size);
		return err;
	}
	return KG_OK;
}
