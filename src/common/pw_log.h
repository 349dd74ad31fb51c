/* pw_log: structured JSON logging to stderr, one object per line.
 * Configured once in a service's main() before threads start; afterwards the
 * configuration is read-only, so logging is thread-safe. */
#ifndef PW_LOG_H
#define PW_LOG_H

#include <jansson.h>

typedef enum { PW_LOG_DEBUG = 0, PW_LOG_INFO, PW_LOG_WARN, PW_LOG_ERROR } pw_log_level;

/* Sets the service and instance names stamped on every line and the minimum
 * level; level_name is "debug", "info", "warn" or "error" (NULL = info).
 * Returns -1 on an unknown level name (then info is used). */
int pw_log_init(const char *service, const char *instance, const char *level_name);

/* printf-style message under an event name: {"ts","level","service","instance","event","msg"}. */
void pw_log(pw_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Same, with extra fields merged into the line. Takes ownership of fields (may be NULL). */
void pw_log_fields(pw_log_level level, const char *event, json_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

int pw_log_enabled(pw_log_level level);

#endif
