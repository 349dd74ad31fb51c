/* dq_config: plantwatch-dlq's settings from the environment: the DLQ topic
 * and the replay targets (the same variables the consumer reads), the Kafka
 * credentials that read the DLQ and those that publish replays. */
#ifndef DQ_CONFIG_H
#define DQ_CONFIG_H

#include <stddef.h>

#include "pw_kafka.h"

#define DQ_TARGETS 2

typedef struct {
    char *topic_dlq;           /* PW_TOPIC_DLQ [sensor-dlq] */
    char *targets[DQ_TARGETS]; /* PW_TOPIC_TELEMETRY, PW_TOPIC_ALERTS: replay targets */
    pw_kafka_settings reader;  /* PW_KAFKA_* (user [consumer]): reads the DLQ */
    pw_kafka_settings writer;  /* PW_DLQ_REPLAY_* over PW_KAFKA_*; only with want_writer */
    int has_writer;            /* writer was loaded */
    int verbose;               /* PW_LOG_LEVEL=debug: librdkafka's own log on stderr */
} dq_config;

/* 0, or -1 with a message in err (e.g. no password). Every string is a heap
 * copy owned by c until dq_config_free. The writer is loaded only when
 * want_writer is set: PW_DLQ_REPLAY_USERNAME with PW_DLQ_REPLAY_PASSWORD_FILE or
 * PW_DLQ_REPLAY_PASSWORD, or the reader's credentials when that is unset. */
int dq_config_from_env(dq_config *c, int want_writer, char *err, size_t errlen);
void dq_config_free(dq_config *c);

#endif
