/* dlq: the dead-letter producer. A record that cannot be stored is produced,
 * byte for byte (key, value, original headers), to the DLQ topic with headers
 * pw-dlq-reason, pw-dlq-detail, pw-source-topic, pw-source-partition and
 * pw-source-offset; the caller moves the source offset on only after the
 * broker acknowledged.
 *
 * Each queued dead letter has a ticket that its delivery report writes to.
 * The ticket is shared by the caller and the producer, and freed by
 * whichever lets go of it last, so a caller may drop a record (rebalance,
 * shutdown) while its delivery report is still on the way. Single-threaded:
 * delivery reports run inside pwc_dlq_flush / pwc_dlq_free on the caller's
 * thread. */
#ifndef PWC_DLQ_H
#define PWC_DLQ_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "config.h"

/* The reason of a record the store refused for good (isolated from its batch). */
#define PWC_REASON_REFUSED "store_refused"

typedef struct pwc_dlq pwc_dlq;
typedef struct pwc_dlq_ticket pwc_dlq_ticket;

pwc_dlq *pwc_dlq_new(const pwc_config *cfg, char *err, size_t errlen);
/* Waits up to 10 s for outstanding answers, then drops the rest (their
 * tickets get -1). */
void pwc_dlq_free(pwc_dlq *d);

/* Queues one dead letter (src, reason and detail are copied). Returns the
 * caller's reference to its ticket (release it with pwc_dlq_ticket_release),
 * or NULL when it could not even be queued. */
pwc_dlq_ticket *pwc_dlq_produce(pwc_dlq *d, const rd_kafka_message_t *src, const char *reason,
                                const char *detail);

/* 1 acknowledged by the broker, -1 failed, 0 no answer yet. */
int pwc_dlq_ticket_status(const pwc_dlq_ticket *t);
/* Drops the caller's reference; NULL is a no-op. */
void pwc_dlq_ticket_release(pwc_dlq_ticket *t);

/* Waits up to timeout_ms for every queued dead letter's answer (serving
 * delivery reports). 0 when all were answered, -1 on timeout. */
int pwc_dlq_flush(pwc_dlq *d, int timeout_ms);

#endif
