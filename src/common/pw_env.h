/* pw_env: configuration from environment variables with defaults and range
 * checks, and secrets from NAME_FILE (preferred) or NAME. */
#ifndef PW_ENV_H
#define PW_ENV_H

#include <stddef.h>

/* Value of name, or def when unset or empty. */
const char *pw_env_str(const char *name, const char *def);

/* Integer value of name within [min, max]; def when unset. On a malformed or
 * out-of-range value writes a message into err and returns -1, else 0. */
int pw_env_long(const char *name, long def, long min, long max, long *out, char *err,
                size_t errlen);

/* Secret: contents of the file named by <name>_FILE (trailing newline trimmed),
 * else the value of <name>, else NULL. Caller frees. */
char *pw_env_secret(const char *name);

#endif
