/* kafka_out: librdkafka producer, delivery reports and readiness. Delivery
 * reports run on the poll thread; they count a record as acknowledged or
 * failed in its request's pw_delivery and complete the request when it was
 * the last one. */
#include "kafka_out.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pw_kafka.h"
#include "pw_log.h"
#include "pw_time.h"

static const double pw_latency_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                           0.25,  0.5,    1.0,   2.5,  5.0,   10.0};

void pw_delivery_begin(pw_delivery *d, pw_delivery_done_fn done, void *ctx)
{
    atomic_init(&d->pending, 1);
    atomic_init(&d->failed, 0);
    atomic_init(&d->delivered, 0);
    atomic_init(&d->first_err, 0);
    d->start_us = pw_monotonic_us();
    d->done = done;
    d->ctx = ctx;
}

static void pw_delivery_release(pw_delivery *d)
{
    if (atomic_fetch_sub(&d->pending, 1) == 1) {
        d->done(d, d->ctx);
    }
}

void pw_delivery_end(pw_delivery *d)
{
    pw_delivery_release(d);
}

static void pw_delivery_fail(pw_delivery *d, rd_kafka_resp_err_t err)
{
    int expected = 0;
    atomic_compare_exchange_strong(&d->first_err, &expected, (int)err);
    atomic_fetch_add(&d->failed, 1);
}

static void pw_delivery_sync_done(pw_delivery *d, void *ctx)
{
    (void)d;
    pw_delivery_sync *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->complete = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void pw_delivery_sync_begin(pw_delivery_sync *s)
{
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->complete = 0;
    pw_delivery_begin(&s->d, pw_delivery_sync_done, s);
}

void pw_delivery_sync_wait(pw_delivery_sync *s)
{
    pw_delivery_end(&s->d);
    pthread_mutex_lock(&s->mu);
    while (!s->complete) {
        pthread_cond_wait(&s->cv, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
}

void pw_delivery_sync_destroy(pw_delivery_sync *s)
{
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

static void pw_kafka_dr(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    (void)rk;
    pw_kafka_out *k = opaque;
    pw_ingest_msg *m = msg->_private;
    pw_delivery *d = m->dlv;
    const char *topic[] = {rd_kafka_topic_name(msg->rkt)};
    if (msg->err) {
        const char *labels[] = {topic[0], rd_kafka_err2name(msg->err)};
        pw_prom_add(k->failed, labels, 1);
        m->err = (int)msg->err;
        m->state = PW_MSG_FAILED;
        pw_delivery_fail(d, msg->err);
    } else {
        m->state = PW_MSG_DELIVERED;
        pw_prom_add(k->accepted, topic, 1);
        pw_prom_observe(k->latency, topic, (double)(pw_monotonic_us() - d->start_us) / 1e6);
        atomic_fetch_add(&d->delivered, 1);
    }
    pw_delivery_release(d);
}

static void pw_kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    pw_kafka_out *k = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[256];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof(buf));
        atomic_store(&k->fatal, 1);
        atomic_store(&k->ready, 0);
        pw_log(PW_LOG_ERROR, "kafka_fatal", "%s: %s", rd_kafka_err2name(orig), buf);
        return;
    }
    pw_log(PW_LOG_WARN, "kafka_error", "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err),
           reason);
}

static void pw_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    pw_log_level l = level <= 3 ? PW_LOG_ERROR : level <= 5 ? PW_LOG_WARN : PW_LOG_DEBUG;
    if (pw_log_enabled(l)) {
        pw_log_fields(l, "librdkafka", json_pack("{s:s}", "facility", fac), "%s", buf);
    }
}

static int pw_kafka_set_all(rd_kafka_conf_t *conf, const char *const *kv, char *err, size_t errlen)
{
    for (size_t i = 0; kv[i]; i += 2) {
        if (pw_kafka_conf_set(conf, kv[i], kv[i + 1], err, errlen) != 0) {
            return -1;
        }
    }
    return 0;
}

static rd_kafka_topic_t *pw_kafka_topic(pw_kafka_out *k, const char *name, const char *codec,
                                        char *err, size_t errlen)
{
    rd_kafka_topic_conf_t *tc = rd_kafka_topic_conf_new();
    char timeout[24];
    snprintf(timeout, sizeof(timeout), "%ld", k->cfg->delivery_timeout_ms);
    const char *kv[][2] = {
        {"acks", "all"}, {"message.timeout.ms", timeout}, {"compression.codec", codec}};
    for (size_t i = 0; i < 3; i++) {
        if (rd_kafka_topic_conf_set(tc, kv[i][0], kv[i][1], err, errlen) != RD_KAFKA_CONF_OK) {
            rd_kafka_topic_conf_destroy(tc);
            return NULL;
        }
    }
    rd_kafka_topic_t *t = rd_kafka_topic_new(k->rk, name, tc);
    if (!t) {
        snprintf(err, errlen, "topic %s: %s", name, rd_kafka_err2str(rd_kafka_last_error()));
    }
    return t;
}

int pw_kafka_out_init(pw_kafka_out *k, const pw_producer_config *cfg, pw_prom *prom, char *err,
                      size_t errlen)
{
    memset(k, 0, sizeof(*k));
    k->cfg = cfg;
    pthread_mutex_init(&k->ready_mu, NULL);
    snprintf(k->ready_why, sizeof(k->ready_why), "no metadata yet");
    k->accepted = pw_prom_counter(prom, "pw_messages_accepted_total",
                                  "Records acknowledged by Kafka (acks=all)", "topic");
    k->failed = pw_prom_counter(prom, "pw_messages_failed_total",
                                "Records Kafka did not acknowledge", "topic,reason");
    k->latency = pw_prom_histogram(prom, "pw_delivery_latency_seconds",
                                   "Request receipt to broker acknowledgement, per record", "topic",
                                   pw_latency_bounds,
                                   sizeof(pw_latency_bounds) / sizeof(pw_latency_bounds[0]));
    pw_prom_gauge_fn(prom, "pw_kafka_queue_depth", "Records waiting in the local producer queue",
                     pw_kafka_out_queue_depth, k);

    rd_kafka_conf_t *conf = pw_kafka_conf_new(&cfg->kafka, err, errlen);
    if (!conf) {
        return -1;
    }
    char linger[24], qmsgs[24], qkb[24], timeout[24];
    snprintf(linger, sizeof(linger), "%ld", cfg->linger_ms);
    snprintf(qmsgs, sizeof(qmsgs), "%ld", cfg->queue_max_messages);
    snprintf(qkb, sizeof(qkb), "%ld", cfg->queue_max_kbytes);
    snprintf(timeout, sizeof(timeout), "%ld", cfg->delivery_timeout_ms);
    const char *kv[] = {"acks",
                        "all",
                        "enable.idempotence",
                        "true",
                        "linger.ms",
                        linger,
                        "queue.buffering.max.messages",
                        qmsgs,
                        "queue.buffering.max.kbytes",
                        qkb,
                        "message.timeout.ms",
                        timeout,
                        "socket.keepalive.enable",
                        "true",
                        "socket.nagle.disable",
                        "true",
                        "client.id",
                        cfg->instance,
                        NULL};
    if (pw_kafka_set_all(conf, kv, err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_dr_msg_cb(conf, pw_kafka_dr);
    rd_kafka_conf_set_error_cb(conf, pw_kafka_error);
    rd_kafka_conf_set_log_cb(conf, pw_kafka_log);
    k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
    if (!k->rk) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    k->topics[PW_KIND_READING] = pw_kafka_topic(k, cfg->topic_telemetry, "lz4", err, errlen);
    k->topics[PW_KIND_ALERT] = pw_kafka_topic(k, cfg->topic_alerts, "none", err, errlen);
    if (!k->topics[PW_KIND_READING] || !k->topics[PW_KIND_ALERT]) {
        return -1;
    }
    return 0;
}

static void *pw_kafka_poll_main(void *arg)
{
    pw_kafka_out *k = arg;
    while (atomic_load(&k->running)) {
        rd_kafka_poll(k->rk, 100);
    }
    return NULL;
}

static void pw_kafka_sleep_ms(pw_kafka_out *k, long ms)
{
    for (long slept = 0; slept < ms && atomic_load(&k->running); slept += 50) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void pw_kafka_set_ready(pw_kafka_out *k, int ready, const char *why)
{
    pthread_mutex_lock(&k->ready_mu);
    snprintf(k->ready_why, sizeof(k->ready_why), "%s", why);
    pthread_mutex_unlock(&k->ready_mu);
    int was = atomic_exchange(&k->ready, ready);
    if (was != ready) {
        pw_log(ready ? PW_LOG_INFO : PW_LOG_WARN, "kafka_ready", "ready=%d (%s)", ready, why);
    }
}

/* Asks the cluster for the telemetry topic's metadata every ready_interval_ms. */
static void *pw_kafka_ready_main(void *arg)
{
    pw_kafka_out *k = arg;
    while (atomic_load(&k->running)) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err =
            rd_kafka_metadata(k->rk, 0, k->topics[PW_KIND_READING], &md, 2000);
        if (atomic_load(&k->fatal)) {
            pw_kafka_set_ready(k, 0, "fatal producer error");
        } else if (err) {
            pw_kafka_set_ready(k, 0, rd_kafka_err2str(err));
        } else if (md->topic_cnt < 1 || md->topics[0].err || md->broker_cnt < 1) {
            pw_kafka_set_ready(k, 0, "telemetry topic metadata unavailable");
        } else {
            pw_kafka_set_ready(k, 1, "cluster metadata reachable");
        }
        if (md) {
            rd_kafka_metadata_destroy(md);
        }
        pw_kafka_sleep_ms(k, atomic_load(&k->ready) ? k->cfg->ready_interval_ms : 500);
    }
    return NULL;
}

int pw_kafka_out_start(pw_kafka_out *k)
{
    atomic_store(&k->running, 1);
    if (pthread_create(&k->poll_thread, NULL, pw_kafka_poll_main, k) != 0) {
        return -1;
    }
    if (pthread_create(&k->ready_thread, NULL, pw_kafka_ready_main, k) != 0) {
        return -1;
    }
    return 0;
}

static rd_kafka_headers_t *pw_kafka_headers(const pw_ingest_msg *m)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(3);
    rd_kafka_header_add(h, "pw-token", -1, m->token, -1);
    rd_kafka_header_add(h, "pw-schema", -1, "1", 1);
    rd_kafka_header_add(h, "content-type", -1, PW_PRODUCER_CONTENT_TYPE, -1);
    return h;
}

pw_send_result pw_kafka_out_send(pw_kafka_out *k, pw_delivery *d, pw_ingest_msg *m,
                                 long enqueue_timeout_ms)
{
    if (atomic_load(&k->fatal)) {
        return PW_SEND_FATAL;
    }
    int64_t deadline = pw_monotonic_us() + enqueue_timeout_ms * 1000;
    atomic_fetch_add(&d->pending, 1);
    m->dlv = d;
    m->state = PW_MSG_ENQUEUED; /* before producev: the report may come at once */
    for (;;) {
        rd_kafka_headers_t *h = pw_kafka_headers(m);
        rd_kafka_resp_err_t err = rd_kafka_producev(
            k->rk, RD_KAFKA_V_RKT(k->topics[m->kind]), RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_VALUE(m->value, m->value_len),
            RD_KAFKA_V_KEY(m->key, strlen(m->key)), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(m),
            RD_KAFKA_V_END);
        if (!err) {
            m->value = NULL; /* librdkafka frees it */
            return PW_SEND_OK;
        }
        rd_kafka_headers_destroy(h);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && pw_monotonic_us() < deadline) {
            struct timespec ts = {0, 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        const char *labels[] = {rd_kafka_topic_name(k->topics[m->kind]), rd_kafka_err2name(err)};
        pw_prom_add(k->failed, labels, 1);
        m->err = (int)err;
        m->state = PW_MSG_FAILED;
        pw_delivery_fail(d, err);
        atomic_fetch_sub(&d->pending, 1); /* the guard keeps it above zero */
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            return PW_SEND_QUEUE_FULL;
        }
        return err == RD_KAFKA_RESP_ERR__FATAL ? PW_SEND_FATAL : PW_SEND_ERROR;
    }
}

const char *pw_kafka_out_reason(const pw_ingest_msg *m)
{
    if (m->state == PW_MSG_NOT_SENT) {
        return "not sent: an earlier record of the request could not be enqueued";
    }
    if (m->err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        return "not enqueued: local queue full";
    }
    return rd_kafka_err2str((rd_kafka_resp_err_t)m->err);
}

int pw_kafka_out_ready(void *arg, char *why, size_t whylen)
{
    pw_kafka_out *k = arg;
    pthread_mutex_lock(&k->ready_mu);
    snprintf(why, whylen, "%s", k->ready_why);
    pthread_mutex_unlock(&k->ready_mu);
    return atomic_load(&k->ready) && !atomic_load(&k->fatal);
}

double pw_kafka_out_queue_depth(void *arg)
{
    pw_kafka_out *k = arg;
    return k->rk ? (double)rd_kafka_outq_len(k->rk) : 0;
}

void pw_kafka_out_close(pw_kafka_out *k, int timeout_ms)
{
    if (!k->rk) {
        return;
    }
    rd_kafka_resp_err_t err = rd_kafka_flush(k->rk, timeout_ms);
    if (err) {
        pw_log(PW_LOG_WARN, "kafka_flush", "%d records not delivered before shutdown",
               rd_kafka_outq_len(k->rk));
    }
    if (atomic_exchange(&k->running, 0)) {
        pthread_join(k->poll_thread, NULL);
        pthread_join(k->ready_thread, NULL);
    }
    /* Records still queued fail their requests via delivery reports here. */
    rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(k->rk, 2000); /* serves the purge reports */
    for (int i = 0; i < 2; i++) {
        if (k->topics[i]) {
            rd_kafka_topic_destroy(k->topics[i]);
        }
    }
    rd_kafka_destroy(k->rk);
    k->rk = NULL;
    pthread_mutex_destroy(&k->ready_mu);
}
