/* dq_config: environment → plantwatch-dlq settings (see dq_config.h). */
#include "dq_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_env.h"

#define DQ_DEFAULT_USER "consumer"

static char *dq_dup_env(const char *name, const char *def)
{
    return strdup(pw_env_str(name, def));
}

/* Frees a secret without leaving it in freed heap memory. */
static void dq_secret_free(char *secret)
{
    if (secret == NULL) {
        return;
    }
    volatile char *p = secret;
    while (*p != '\0') {
        *p++ = '\0';
    }
    free(secret);
}

/* Replaces the writer's user and password with PW_DLQ_REPLAY_* when set. */
static int dq_config_writer_user(pw_kafka_settings *w, char *err, size_t errlen)
{
    const char *user = pw_env_str("PW_DLQ_REPLAY_USERNAME", NULL);
    if (user == NULL) {
        return 0;
    }
    char *password = pw_env_secret("PW_DLQ_REPLAY_PASSWORD");
    if (password == NULL) {
        const char *file = pw_env_str("PW_DLQ_REPLAY_PASSWORD_FILE", NULL);
        if (file != NULL) {
            snprintf(err, errlen, "PW_DLQ_REPLAY_PASSWORD_FILE: cannot read \"%s\"", file);
        } else {
            snprintf(err, errlen,
                     "PW_DLQ_REPLAY_USERNAME is set, but neither PW_DLQ_REPLAY_PASSWORD_FILE "
                     "nor PW_DLQ_REPLAY_PASSWORD");
        }
        return -1;
    }
    free(w->username);
    w->username = strdup(user);
    dq_secret_free(w->password);
    w->password = password;
    return 0;
}

static int dq_config_writer(dq_config *c, char *err, size_t errlen)
{
    if (pw_kafka_settings_from_env(&c->writer, DQ_DEFAULT_USER, err, errlen) != 0) {
        return -1;
    }
    c->has_writer = 1;
    return dq_config_writer_user(&c->writer, err, errlen);
}

int dq_config_from_env(dq_config *c, int want_writer, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->topic_dlq = dq_dup_env("PW_TOPIC_DLQ", "sensor-dlq");
    c->targets[0] = dq_dup_env("PW_TOPIC_TELEMETRY", "sensor-telemetry");
    c->targets[1] = dq_dup_env("PW_TOPIC_ALERTS", "sensor-alerts");
    c->verbose = strcmp(pw_env_str("PW_LOG_LEVEL", "info"), "debug") == 0;
    if (pw_kafka_settings_from_env(&c->reader, DQ_DEFAULT_USER, err, errlen) != 0) {
        dq_config_free(c);
        return -1;
    }
    if (want_writer && dq_config_writer(c, err, errlen) != 0) {
        dq_config_free(c);
        return -1;
    }
    return 0;
}

void dq_config_free(dq_config *c)
{
    free(c->topic_dlq);
    for (size_t i = 0; i < DQ_TARGETS; i++) {
        free(c->targets[i]);
    }
    pw_kafka_settings_free(&c->reader);
    if (c->has_writer) {
        pw_kafka_settings_free(&c->writer);
    }
    memset(c, 0, sizeof *c);
}
