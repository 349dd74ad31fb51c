/* kafka_out: the producer's one librdkafka handle (acks=all, idempotent), the
 * per-topic handles (lz4 for telemetry, none for alerts), the poll thread that
 * runs delivery reports, the readiness probe and the delivery tracker that
 * lets a request answer only once every one of its records was acknowledged. */
#ifndef PW_PRODUCER_KAFKA_OUT_H
#define PW_PRODUCER_KAFKA_OUT_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "ingest.h"
#include "pw_prom.h"

typedef struct pw_delivery pw_delivery;
/* Called exactly once, on the thread that completed the last record (the
 * poll thread, or the caller of pw_delivery_end). */
typedef void (*pw_delivery_done_fn)(pw_delivery *d, void *ctx);

/* Tracks the records of one request. pending holds one guard reference from
 * pw_delivery_begin until pw_delivery_end, so completion cannot happen while
 * records are still being enqueued. */
struct pw_delivery {
    atomic_int pending;
    atomic_int failed;    /* records that were not acknowledged */
    atomic_int delivered; /* records acknowledged */
    atomic_int first_err; /* rd_kafka_resp_err_t of the first failure */
    int64_t start_us;
    pw_delivery_done_fn done;
    void *ctx;
};

void pw_delivery_begin(pw_delivery *d, pw_delivery_done_fn done, void *ctx);
/* Drops the guard; runs done when nothing is pending. */
void pw_delivery_end(pw_delivery *d);

/* Blocking helper for worker threads (gRPC): begin/end + wait. */
typedef struct {
    pw_delivery d;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int complete;
} pw_delivery_sync;

void pw_delivery_sync_begin(pw_delivery_sync *s);
/* Ends the guard and waits until every record is acknowledged or failed. */
void pw_delivery_sync_wait(pw_delivery_sync *s);
void pw_delivery_sync_destroy(pw_delivery_sync *s);

typedef struct {
    rd_kafka_t *rk;
    rd_kafka_topic_t *topics[2]; /* by pw_kind */
    const pw_producer_config *cfg;
    pthread_t poll_thread;
    pthread_t ready_thread;
    atomic_int running;
    atomic_int ready; /* 1 while cluster metadata is reachable */
    atomic_int fatal; /* 1 after a fatal (idempotence) error */
    char ready_why[128];
    pthread_mutex_t ready_mu;
    pw_prom_family *accepted; /* pw_messages_accepted_total{topic} */
    pw_prom_family *failed;   /* pw_messages_failed_total{topic,reason} */
    pw_prom_family *latency;  /* pw_delivery_latency_seconds{topic} */
} pw_kafka_out;

/* Creates the producer and topic handles and registers metrics. 0 or -1. */
int pw_kafka_out_init(pw_kafka_out *k, const pw_producer_config *cfg, pw_prom *prom, char *err,
                      size_t errlen);
/* Starts the poll and readiness threads. */
int pw_kafka_out_start(pw_kafka_out *k);

typedef enum {
    PW_SEND_OK = 0,
    PW_SEND_QUEUE_FULL, /* local queue stayed full for the enqueue timeout */
    PW_SEND_FATAL,      /* producer unusable (fatal error) */
    PW_SEND_ERROR       /* any other immediate error */
} pw_send_result;

/* Enqueues m (its value is handed to librdkafka on success) for d, waiting up
 * to enqueue_timeout_ms for room while the local queue is full. m must stay
 * at its address until d completes: the delivery report records the outcome
 * in m->state / m->err. A refused record is FAILED at once. */
pw_send_result pw_kafka_out_send(pw_kafka_out *k, pw_delivery *d, pw_ingest_msg *m,
                                 long enqueue_timeout_ms);

/* Why m (not DELIVERED once its request completed) was not accepted:
 * "not sent: …", "not enqueued: local queue full" or librdkafka's text. */
const char *pw_kafka_out_reason(const pw_ingest_msg *m);

/* Readiness for /readyz. */
int pw_kafka_out_ready(void *k, char *why, size_t whylen);
double pw_kafka_out_queue_depth(void *k);

/* Waits up to timeout_ms for outstanding records, stops threads, destroys. */
void pw_kafka_out_close(pw_kafka_out *k, int timeout_ms);

#endif
