/* dq_publish: the replay producer. Owns the publishing client (acks=all,
 * idempotent), publishing a dead letter's key and value byte for byte with its
 * replay headers, the delivery count (a record counts as delivered or failed
 * only once the broker, or the delivery timeout, answered) and the failure
 * messages (the first few are shown, all are counted). */
#ifndef DQ_PUBLISH_H
#define DQ_PUBLISH_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdio.h>

#include "dq_signals.h"
#include "pw_kafka.h"

#define DQ_PUBLISH_SHOWN_FAILURES 10

typedef struct dq_publisher dq_publisher;

typedef struct {
    long queued;    /* handed to the client */
    long delivered; /* acknowledged by the in-sync replicas */
    long failed;    /* refused by the client or the broker, or timed out */
} dq_publish_counts;

/* A publisher with the client settings s (read during the call). Failures are
 * reported on errout; sig is polled while waiting for room in the local queue.
 * Both are borrowed and must outlive the publisher. NULL with err. */
dq_publisher *dq_publisher_new(const pw_kafka_settings *s, int verbose, FILE *errout,
                               dq_signals *sig, char *err, size_t errlen);

/* Waits for nothing: records still unanswered are purged uncounted (call
 * dq_publisher_drain first). NULL is a no-op. */
void dq_publisher_free(dq_publisher *p);

/* Queues the dead letter m (valid during the call only; key, value and headers
 * are copied) for topic and partition (RD_KAFKA_PARTITION_UA: by key).
 * 0 queued; -1 refused by the client (counted failed and reported); 1 not
 * queued because a signal arrived while the local queue was full. */
int dq_publisher_send(dq_publisher *p, const rd_kafka_message_t *m, const char *topic,
                      int32_t partition);

/* Serves delivery reports without waiting. */
void dq_publisher_poll(dq_publisher *p);

/* Waits until every queued record was answered, at most timeout_ms; a second
 * signal ends the wait early. Returns the number still unanswered. */
long dq_publisher_drain(dq_publisher *p, int timeout_ms);

dq_publish_counts dq_publisher_counts(const dq_publisher *p);

#endif
