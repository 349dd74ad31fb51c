/* dq_kafka: what plantwatch-dlq adds to the shared Kafka configuration
 * (pw_kafka): librdkafka's own log kept off the terminal unless asked for, and
 * client errors captured so a command can say why it could not proceed. */
#ifndef DQ_KAFKA_H
#define DQ_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "pw_kafka.h"

typedef struct {
    char last[512];     /* the most recent client error, "" when none */
    int auth_failed;    /* SASL authentication was refused */
    int fatal;          /* librdkafka reported a fatal error */
    char username[128]; /* the client's user, for messages */
} dq_kafka_errors;

/* A configuration from s (see pw_kafka_conf_new) whose error callback fills
 * *errors. errors must outlive the client made from it; s is only read during
 * the call. verbose keeps librdkafka's log on stderr. NULL with err. */
rd_kafka_conf_t *dq_kafka_conf_new(const pw_kafka_settings *s, int verbose, dq_kafka_errors *errors,
                                   char *err, size_t errlen);

/* 1 when errors hold a reason to give up (authentication or fatal). */
int dq_kafka_broken(const dq_kafka_errors *errors);

/* A message for a failed step: "<what>: <librdkafka error>" plus the last
 * client error when there is one. */
void dq_kafka_explain(const dq_kafka_errors *errors, const char *what, rd_kafka_resp_err_t e,
                      char *err, size_t errlen);

#endif
