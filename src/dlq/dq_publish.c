/* dq_publish: idempotent acks=all replay producer with delivery counting
 * (see dq_publish.h). */
#include "dq_publish.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dq_kafka.h"
#include "dq_letter.h"
#include "pw_time.h"

#define DQ_PUBLISH_QUEUE_WAIT_MS 100

struct dq_publisher {
    rd_kafka_t *rk;
    dq_kafka_errors errors;
    dq_publish_counts counts;
    FILE *errout;    /* borrowed */
    dq_signals *sig; /* borrowed */
    int closing;     /* purged at the end: reports are no longer counted or shown */
};

/* What a delivery report needs to name its record; one per queued record. */
typedef struct {
    dq_publisher *p;
    int32_t dlq_partition;
    int64_t dlq_offset;
} dq_pending;

/* Counts one failure and shows it while fewer than DQ_PUBLISH_SHOWN_FAILURES were. */
static void dq_publish_failed(dq_publisher *p, int32_t partition, int64_t offset, const char *topic,
                              const char *why)
{
    p->counts.failed++;
    if (p->counts.failed <= DQ_PUBLISH_SHOWN_FAILURES) {
        fprintf(p->errout, "plantwatch-dlq: replay of %" PRId32 ":%" PRId64 " to %s failed: %s\n",
                partition, offset, topic, why);
    }
    if (p->counts.failed == DQ_PUBLISH_SHOWN_FAILURES) {
        fprintf(p->errout, "plantwatch-dlq: further failures are counted, not shown\n");
    }
}

static void dq_publish_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    dq_pending *pend = m->_private;
    if (pend == NULL) {
        return;
    }
    dq_publisher *p = pend->p;
    if (p->closing) {
        /* purged after the final count: neither counted nor shown */
    } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        p->counts.delivered++;
    } else {
        dq_publish_failed(p, pend->dlq_partition, pend->dlq_offset, rd_kafka_topic_name(m->rkt),
                          rd_kafka_err2str(m->err));
    }
    free(pend);
}

static rd_kafka_conf_t *dq_publish_conf(dq_publisher *p, const pw_kafka_settings *s, int verbose,
                                        char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = dq_kafka_conf_new(s, verbose, &p->errors, err, errlen);
    if (conf == NULL) {
        return NULL;
    }
    if (pw_kafka_conf_set(conf, "acks", "all", err, errlen) != 0 ||
        pw_kafka_conf_set(conf, "enable.idempotence", "true", err, errlen) != 0 ||
        pw_kafka_conf_set(conf, "linger.ms", "5", err, errlen) != 0 ||
        pw_kafka_conf_set(conf, "delivery.timeout.ms", "60000", err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dq_publish_delivered);
    return conf;
}

dq_publisher *dq_publisher_new(const pw_kafka_settings *s, int verbose, FILE *errout,
                               dq_signals *sig, char *err, size_t errlen)
{
    dq_publisher *p = calloc(1, sizeof *p);
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->errout = errout;
    p->sig = sig;
    rd_kafka_conf_t *conf = dq_publish_conf(p, s, verbose, err, errlen);
    char kerr[512];
    p->rk = conf ? rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof kerr) : NULL;
    if (p->rk == NULL) {
        if (conf != NULL) {
            snprintf(err, errlen, "Kafka producer: %s", kerr);
            rd_kafka_conf_destroy(conf);
        }
        free(p);
        return NULL;
    }
    return p;
}

void dq_publisher_free(dq_publisher *p)
{
    if (p == NULL) {
        return;
    }
    p->closing = 1;
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(p->rk, 0); /* frees the purged records' reports */
    rd_kafka_destroy(p->rk);
    free(p);
}

static rd_kafka_resp_err_t dq_publish_one(dq_publisher *p, const rd_kafka_message_t *m,
                                          const char *topic, int32_t partition,
                                          rd_kafka_headers_t *h, dq_pending *pend)
{
    return rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_KEY(m->key, m->key_len),
                             RD_KAFKA_V_VALUE(m->payload, m->len), RD_KAFKA_V_HEADERS(h),
                             RD_KAFKA_V_OPAQUE(pend), RD_KAFKA_V_END);
}

/* Produces, waiting while the local queue is full; _INTR when a signal
 * arrived during that wait. */
static rd_kafka_resp_err_t dq_publish_queue(dq_publisher *p, const rd_kafka_message_t *m,
                                            const char *topic, int32_t partition,
                                            rd_kafka_headers_t *h, dq_pending *pend)
{
    rd_kafka_resp_err_t e = dq_publish_one(p, m, topic, partition, h, pend);
    while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        if (dq_signals_poll(p->sig) > 0) {
            return RD_KAFKA_RESP_ERR__INTR;
        }
        rd_kafka_poll(p->rk, DQ_PUBLISH_QUEUE_WAIT_MS);
        e = dq_publish_one(p, m, topic, partition, h, pend);
    }
    return e;
}

int dq_publisher_send(dq_publisher *p, const rd_kafka_message_t *m, const char *topic,
                      int32_t partition)
{
    rd_kafka_headers_t *orig = NULL;
    if (rd_kafka_message_headers(m, &orig) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        orig = NULL;
    }
    rd_kafka_headers_t *h = dq_replay_headers(orig, m->partition, m->offset);
    dq_pending *pend = malloc(sizeof *pend);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__FAIL;
    if (h != NULL && pend != NULL) {
        *pend = (dq_pending){.p = p, .dlq_partition = m->partition, .dlq_offset = m->offset};
        e = dq_publish_queue(p, m, topic, partition, h, pend);
    }
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        p->counts.queued++;
        return 0;
    }
    if (h != NULL) {
        rd_kafka_headers_destroy(h);
    }
    free(pend);
    if (e == RD_KAFKA_RESP_ERR__INTR) {
        return 1;
    }
    dq_publish_failed(p, m->partition, m->offset, topic,
                      h && pend ? rd_kafka_err2str(e) : "out of memory");
    return -1;
}

void dq_publisher_poll(dq_publisher *p)
{
    rd_kafka_poll(p->rk, 0);
}

long dq_publisher_drain(dq_publisher *p, int timeout_ms)
{
    int64_t deadline = pw_monotonic_us() + (int64_t)timeout_ms * 1000;
    while (rd_kafka_outq_len(p->rk) > 0 && pw_monotonic_us() < deadline) {
        if (dq_signals_poll(p->sig) >= 2) {
            break;
        }
        rd_kafka_poll(p->rk, 100);
    }
    rd_kafka_poll(p->rk, 0);
    return (long)rd_kafka_outq_len(p->rk);
}

dq_publish_counts dq_publisher_counts(const dq_publisher *p)
{
    return p->counts;
}
