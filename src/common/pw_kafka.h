/* pw_kafka: client settings for the cluster (SASL_SSL + SCRAM-SHA-512) from the
 * environment, shared by every service that talks to Kafka. */
#ifndef PW_KAFKA_H
#define PW_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

typedef struct {
    char *bootstrap; /* PW_KAFKA_BOOTSTRAP, default 127.0.0.1:9093 */
    char *username;  /* PW_KAFKA_USERNAME, default given by the service */
    char *password;  /* PW_KAFKA_PASSWORD_FILE or PW_KAFKA_PASSWORD (required) */
    char *ca_file;   /* PW_KAFKA_CA_FILE (optional: system CAs otherwise) */
    char *protocol;  /* PW_KAFKA_SECURITY_PROTOCOL, default SASL_SSL */
    char *client_id; /* PW_INSTANCE */
} pw_kafka_settings;

/* Returns 0, or -1 with a message in err (e.g. no password configured). */
int pw_kafka_settings_from_env(pw_kafka_settings *s, const char *default_user, char *err,
                               size_t errlen);
void pw_kafka_settings_free(pw_kafka_settings *s);

/* A new rd_kafka_conf_t with connection and security settings applied, or NULL
 * with a message in err. */
rd_kafka_conf_t *pw_kafka_conf_new(const pw_kafka_settings *s, char *err, size_t errlen);

/* Sets one property; returns 0 or -1 with librdkafka's message in err. */
int pw_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err,
                      size_t errlen);

#endif
