/* dlq: dead-letter production with delivery confirmation (see dlq.h). */
#include "dlq.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_kafka.h"
#include "pw_log.h"

struct pwc_dlq {
    rd_kafka_t *rk;
    char *topic;
};

/* refs: the caller's and the producer's (until its delivery report) */
struct pwc_dlq_ticket {
    int refs;
    int status;
};

void pwc_dlq_ticket_release(pwc_dlq_ticket *t)
{
    if (t && --t->refs == 0) {
        free(t);
    }
}

int pwc_dlq_ticket_status(const pwc_dlq_ticket *t)
{
    return t ? t->status : -1;
}

static void dlq_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    pwc_dlq_ticket *t = m->_private;
    if (t) {
        t->status = m->err ? -1 : 1;
        pwc_dlq_ticket_release(t);
    }
    if (m->err) {
        pw_log(PW_LOG_WARN, "dlq_delivery_failed", "%s", rd_kafka_err2str(m->err));
    }
}

pwc_dlq *pwc_dlq_new(const pwc_config *cfg, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = pw_kafka_conf_new(&cfg->kafka, err, errlen);
    if (!conf) {
        return NULL;
    }
    if (pw_kafka_conf_set(conf, "acks", "all", err, errlen) ||
        pw_kafka_conf_set(conf, "enable.idempotence", "true", err, errlen) ||
        pw_kafka_conf_set(conf, "linger.ms", "5", err, errlen) ||
        pw_kafka_conf_set(conf, "delivery.timeout.ms", "30000", err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dlq_delivered);
    pwc_dlq *d = calloc(1, sizeof(*d));
    char kerr[256];
    d->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof(kerr));
    if (!d->rk) {
        snprintf(err, errlen, "dlq producer: %s", kerr);
        rd_kafka_conf_destroy(conf);
        free(d);
        return NULL;
    }
    d->topic = strdup(cfg->topic_dlq);
    return d;
}

void pwc_dlq_free(pwc_dlq *d)
{
    if (!d) {
        return;
    }
    if (rd_kafka_flush(d->rk, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        /* what is still queued fails now: its delivery reports free the tickets */
        rd_kafka_purge(d->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(d->rk, 1000);
    }
    rd_kafka_destroy(d->rk);
    free(d->topic);
    free(d);
}

static rd_kafka_headers_t *dlq_headers(const rd_kafka_message_t *src, const char *reason,
                                       const char *detail)
{
    rd_kafka_headers_t *orig = NULL, *h;
    if (rd_kafka_message_headers(src, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR && orig) {
        h = rd_kafka_headers_copy(orig);
    } else {
        h = rd_kafka_headers_new(8);
    }
    char part[16], off[24];
    snprintf(part, sizeof(part), "%" PRId32, src->partition);
    snprintf(off, sizeof(off), "%" PRId64, src->offset);
    rd_kafka_header_add(h, "pw-dlq-reason", -1, reason, -1);
    rd_kafka_header_add(h, "pw-dlq-detail", -1, detail, -1);
    rd_kafka_header_add(h, "pw-source-topic", -1, rd_kafka_topic_name(src->rkt), -1);
    rd_kafka_header_add(h, "pw-source-partition", -1, part, -1);
    rd_kafka_header_add(h, "pw-source-offset", -1, off, -1);
    return h;
}

pwc_dlq_ticket *pwc_dlq_produce(pwc_dlq *d, const rd_kafka_message_t *src, const char *reason,
                                const char *detail)
{
    pwc_dlq_ticket *t = calloc(1, sizeof(*t));
    if (!t) {
        return NULL;
    }
    t->refs = 2;
    rd_kafka_headers_t *h = dlq_headers(src, reason, detail);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        d->rk, RD_KAFKA_V_TOPIC(d->topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(src->key, src->key_len), RD_KAFKA_V_VALUE(src->payload, src->len),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(t), RD_KAFKA_V_END);
    if (e) {
        rd_kafka_headers_destroy(h);
        free(t);
        pw_log(PW_LOG_WARN, "dlq_produce_failed", "%s", rd_kafka_err2str(e));
        return NULL;
    }
    return t;
}

int pwc_dlq_flush(pwc_dlq *d, int timeout_ms)
{
    return rd_kafka_flush(d->rk, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}
