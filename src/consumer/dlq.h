/* dlq: the dead-letter producer. A record that cannot be stored is produced,
 * byte for byte (key, value, original headers), to the DLQ topic with headers
 * pw-dlq-reason, pw-dlq-detail, pw-source-topic, pw-source-partition and
 * pw-source-offset; the caller moves the source offset on only after the
 * broker acknowledged. */
#ifndef PWC_DLQ_H
#define PWC_DLQ_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "config.h"

typedef struct pwc_dlq pwc_dlq;

pwc_dlq *pwc_dlq_new(const pwc_config *cfg, char *err, size_t errlen);
void pwc_dlq_free(pwc_dlq *d);

/* Queues one dead letter; *status is set when the broker answers:
 * 1 acknowledged, -1 failed. 0 or -1 (could not even queue). */
int pwc_dlq_produce(pwc_dlq *d, const rd_kafka_message_t *src, const char *reason,
                    const char *detail, int *status);

/* Waits up to timeout_ms for every queued dead letter's answer. 0 when all
 * were answered (check each status), -1 on timeout. */
int pwc_dlq_flush(pwc_dlq *d, int timeout_ms);

#endif
