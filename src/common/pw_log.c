/* pw_log: owns the process's structured logger — one JSON object per line on
 * stderr, stamped with time, level, service and instance. The configuration is
 * the one static set once by pw_log_init before threads start. */
#include "pw_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_time.h"

typedef struct {
    char service[64];
    char instance[64];
    pw_log_level min_level;
} pw_log_config;

static pw_log_config pw_log_cfg = {"plantwatch", "", PW_LOG_INFO};

static const char *const pw_log_level_names[] = {"debug", "info", "warn", "error"};

int pw_log_init(const char *service, const char *instance, const char *level_name)
{
    snprintf(pw_log_cfg.service, sizeof pw_log_cfg.service, "%s", service ? service : "");
    snprintf(pw_log_cfg.instance, sizeof pw_log_cfg.instance, "%s", instance ? instance : "");
    pw_log_cfg.min_level = PW_LOG_INFO;
    if (level_name == NULL || level_name[0] == '\0') {
        return 0;
    }
    for (int i = PW_LOG_DEBUG; i <= PW_LOG_ERROR; i++) {
        if (strcasecmp(level_name, pw_log_level_names[i]) == 0) {
            pw_log_cfg.min_level = (pw_log_level)i;
            return 0;
        }
    }
    if (strcasecmp(level_name, "warning") == 0) {
        pw_log_cfg.min_level = PW_LOG_WARN;
        return 0;
    }
    return -1;
}

int pw_log_enabled(pw_log_level level)
{
    return level >= pw_log_cfg.min_level;
}

static void pw_log_emit(pw_log_level level, const char *event, json_t *fields, const char *fmt,
                        va_list ap)
{
    char msg[2048];
    char ts[PW_RFC3339_LEN];
    vsnprintf(msg, sizeof msg, fmt, ap);
    pw_time_format_rfc3339(pw_now_ms(), ts);

    json_t *line = json_object();
    if (line == NULL) {
        json_decref(fields);
        return;
    }
    int li = (level >= PW_LOG_DEBUG && level <= PW_LOG_ERROR) ? (int)level : PW_LOG_ERROR;
    json_object_set_new(line, "ts", json_string(ts));
    json_object_set_new(line, "level", json_string(pw_log_level_names[li]));
    json_object_set_new(line, "service", json_string(pw_log_cfg.service));
    json_object_set_new(line, "instance", json_string(pw_log_cfg.instance));
    json_t *jevent = json_string(event ? event : "");
    json_object_set_new(line, "event", jevent ? jevent : json_string("invalid"));
    /* Invalid UTF-8 in msg makes json_string fail; fall back to a lossy copy. */
    json_t *jmsg = json_string(msg);
    if (jmsg == NULL) {
        for (char *p = msg; *p; p++) {
            if ((unsigned char)*p >= 0x80) {
                *p = '?';
            }
        }
        jmsg = json_string(msg);
    }
    json_object_set_new(line, "msg", jmsg ? jmsg : json_string(""));
    if (json_is_object(fields)) {
        const char *k;
        json_t *v;
        json_object_foreach(fields, k, v)
        {
            if (json_object_get(line, k) == NULL) {
                json_object_set(line, k, v);
            }
        }
    }
    json_decref(fields);

    char *text = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    if (text == NULL) {
        return;
    }
    size_t n = strlen(text);
    char *out = realloc(text, n + 2);
    if (out == NULL) {
        free(text);
        return;
    }
    out[n] = '\n';
    out[n + 1] = '\0';
    fwrite(out, 1, n + 1, stderr);
    fflush(stderr);
    free(out);
}

void pw_log(pw_log_level level, const char *event, const char *fmt, ...)
{
    if (!pw_log_enabled(level)) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    pw_log_emit(level, event, NULL, fmt, ap);
    va_end(ap);
}

void pw_log_fields(pw_log_level level, const char *event, json_t *fields, const char *fmt, ...)
{
    if (!pw_log_enabled(level)) {
        json_decref(fields);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    pw_log_emit(level, event, fields, fmt, ap);
    va_end(ap);
}
