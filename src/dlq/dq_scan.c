/* dq_scan: a topic from its start to the high watermarks at start, read with
 * explicitly started partitions and no consumer group (see dq_scan.h). */
#include "dq_scan.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dq_kafka.h"
#include "pw_time.h"

#define DQ_SCAN_TIMEOUT_MS 15000 /* metadata and watermark requests */
#define DQ_SCAN_RETRY_MS 1000    /* between metadata requests */
#define DQ_SCAN_POLL_MS 200
#define DQ_SCAN_STALL_MS 60000 /* no record and no end of partition for this long */

typedef struct {
    int32_t id;
    int64_t low, high; /* snapshot */
    int started;
    int done;
} dq_part;

typedef struct {
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    rd_kafka_queue_t *queue;
    dq_part *parts; /* heap, owned */
    int n;
    dq_kafka_errors errors;
    const char *topic; /* borrowed from the caller */
} dq_scanner;

static int dq_scan_open(dq_scanner *sc, const pw_kafka_settings *s, int verbose, char *err,
                        size_t errlen)
{
    rd_kafka_conf_t *conf = dq_kafka_conf_new(s, verbose, &sc->errors, err, errlen);
    if (conf == NULL) {
        return -1;
    }
    if (pw_kafka_conf_set(conf, "enable.partition.eof", "true", err, errlen) != 0 ||
        pw_kafka_conf_set(conf, "enable.auto.commit", "false", err, errlen) != 0 ||
        pw_kafka_conf_set(conf, "enable.auto.offset.store", "false", err, errlen) != 0 ||
        pw_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    char kerr[512];
    sc->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kerr, sizeof kerr);
    if (sc->rk == NULL) {
        snprintf(err, errlen, "Kafka client: %s", kerr);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    sc->rkt = rd_kafka_topic_new(sc->rk, sc->topic, NULL);
    sc->queue = rd_kafka_queue_new(sc->rk);
    if (sc->rkt == NULL || sc->queue == NULL) {
        snprintf(err, errlen, "Kafka client: cannot open topic %s", sc->topic);
        return -1;
    }
    return 0;
}

static int dq_scan_topic_error(dq_scanner *sc, rd_kafka_resp_err_t e, char *err, size_t errlen)
{
    if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        snprintf(err, errlen, "topic %s does not exist", sc->topic);
    } else if (e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
        snprintf(err, errlen, "Kafka user \"%s\" may not read topic %s (or it does not exist)",
                 sc->errors.username, sc->topic);
    } else {
        char what[300];
        snprintf(what, sizeof what, "topic %s", sc->topic);
        dq_kafka_explain(&sc->errors, what, e, err, errlen);
    }
    return -1;
}

static int dq_scan_keep_partitions(dq_scanner *sc, const rd_kafka_metadata_topic_t *t, char *err,
                                   size_t errlen)
{
    sc->n = t->partition_cnt;
    sc->parts = calloc(sc->n > 0 ? (size_t)sc->n : 1, sizeof *sc->parts);
    if (sc->parts == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < sc->n; i++) {
        sc->parts[i].id = t->partitions[i].id;
    }
    return 0;
}

/* Topic metadata, asked again every second until DQ_SCAN_TIMEOUT_MS: a
 * refused login or a signal ends the wait early. */
static rd_kafka_resp_err_t dq_scan_metadata(dq_scanner *sc, dq_signals *sig,
                                            const struct rd_kafka_metadata **md)
{
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__TIMED_OUT;
    for (int waited = 0; waited < DQ_SCAN_TIMEOUT_MS; waited += DQ_SCAN_RETRY_MS) {
        e = rd_kafka_metadata(sc->rk, 0, sc->rkt, md, DQ_SCAN_RETRY_MS);
        rd_kafka_poll(sc->rk, 0);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR || dq_kafka_broken(&sc->errors) ||
            dq_signals_poll(sig) > 0) {
            break;
        }
    }
    return e;
}

static int dq_scan_partitions(dq_scanner *sc, dq_signals *sig, char *err, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = dq_scan_metadata(sc, sig, &md);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        dq_kafka_explain(&sc->errors, "cannot reach Kafka", e, err, errlen);
        return -1;
    }
    int rc = 0;
    if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rc = dq_scan_topic_error(
            sc, md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
            err, errlen);
    } else {
        rc = dq_scan_keep_partitions(sc, &md->topics[0], err, errlen);
    }
    rd_kafka_metadata_destroy(md);
    return rc;
}

static int dq_scan_snapshot(dq_scanner *sc, long *snapshot, char *err, size_t errlen)
{
    *snapshot = 0;
    for (int i = 0; i < sc->n; i++) {
        dq_part *p = &sc->parts[i];
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(sc->rk, sc->topic, p->id, &p->low,
                                                                 &p->high, DQ_SCAN_TIMEOUT_MS);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            char what[300];
            snprintf(what, sizeof what, "end offsets of %s [%" PRId32 "]", sc->topic, p->id);
            rd_kafka_poll(sc->rk, 0);
            dq_kafka_explain(&sc->errors, what, e, err, errlen);
            return -1;
        }
        p->done = p->low >= p->high;
        *snapshot += (long)(p->high - p->low);
    }
    return 0;
}

static int dq_scan_start(dq_scanner *sc, char *err, size_t errlen)
{
    for (int i = 0; i < sc->n; i++) {
        dq_part *p = &sc->parts[i];
        if (p->done) {
            continue;
        }
        if (rd_kafka_consume_start_queue(sc->rkt, p->id, p->low, sc->queue) != 0) {
            char what[300];
            snprintf(what, sizeof what, "reading %s [%" PRId32 "]", sc->topic, p->id);
            dq_kafka_explain(&sc->errors, what, rd_kafka_last_error(), err, errlen);
            return -1;
        }
        p->started = 1;
    }
    return 0;
}

static dq_part *dq_scan_part(dq_scanner *sc, int32_t id)
{
    for (int i = 0; i < sc->n; i++) {
        if (sc->parts[i].id == id) {
            return &sc->parts[i];
        }
    }
    return NULL;
}

static int dq_scan_all_done(const dq_scanner *sc)
{
    for (int i = 0; i < sc->n; i++) {
        if (!sc->parts[i].done) {
            return 0;
        }
    }
    return 1;
}

/* An error event on the queue: 1 the end of a partition (progress), 0 an
 * error worth noting only, -1 a reason to give up (message in err). */
static int dq_scan_event(dq_scanner *sc, const rd_kafka_message_t *m, char *err, size_t errlen)
{
    dq_part *p = dq_scan_part(sc, m->partition);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (p != NULL && m->offset >= p->high) {
            p->done = 1;
        }
        return 1;
    }
    if (m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
        m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        return dq_scan_topic_error(sc, m->err, err, errlen);
    }
    snprintf(sc->errors.last, sizeof sc->errors.last, "%s", rd_kafka_err2str(m->err));
    return 0;
}

/* One record: 1 when it counts as progress, -1 on an error, 2 when the
 * visitor asked to stop. */
static int dq_scan_record(dq_scanner *sc, const rd_kafka_message_t *m, const dq_scan_hooks *hooks,
                          dq_scan_result *res)
{
    dq_part *p = dq_scan_part(sc, m->partition);
    if (p == NULL || p->done) {
        return 1;
    }
    if (m->offset >= p->high - 1) {
        p->done = 1;
    }
    if (m->offset >= p->high) {
        return 1;
    }
    res->read++;
    int rc = hooks->visit(m, hooks->ctx);
    if (rc < 0) {
        res->failed = 1;
        return -1;
    }
    return rc > 0 ? 2 : 1;
}

/* One poll: 1 progress, 0 nothing, 2 stop, -1 error (message in err). */
static int dq_scan_step(dq_scanner *sc, const dq_scan_hooks *hooks, dq_scan_result *res, char *err,
                        size_t errlen)
{
    rd_kafka_message_t *m = rd_kafka_consume_queue(sc->queue, DQ_SCAN_POLL_MS);
    rd_kafka_poll(sc->rk, 0);
    int rc = 0;
    if (m != NULL && m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rc = dq_scan_event(sc, m, err, errlen);
    } else if (m != NULL) {
        rc = dq_scan_record(sc, m, hooks, res);
    }
    if (m != NULL) {
        rd_kafka_message_destroy(m);
    }
    if (hooks->idle != NULL) {
        hooks->idle(hooks->ctx);
    }
    if (rc == 0 && dq_kafka_broken(&sc->errors)) {
        dq_kafka_explain(&sc->errors, "reading", RD_KAFKA_RESP_ERR__AUTHENTICATION, err, errlen);
        rc = -1;
    }
    return rc;
}

static int dq_scan_loop(dq_scanner *sc, dq_signals *sig, const dq_scan_hooks *hooks,
                        dq_scan_result *res, char *err, size_t errlen)
{
    int64_t last_progress = pw_monotonic_us();
    while (!dq_scan_all_done(sc)) {
        if (dq_signals_poll(sig) > 0) {
            res->interrupted = 1;
            return 0;
        }
        int rc = dq_scan_step(sc, hooks, res, err, errlen);
        if (rc < 0) {
            return res->failed ? 0 : -1;
        }
        if (rc == 2) {
            res->stopped = 1;
            return 0;
        }
        if (rc == 1) {
            last_progress = pw_monotonic_us();
        } else if (pw_monotonic_us() - last_progress > (int64_t)DQ_SCAN_STALL_MS * 1000) {
            dq_kafka_explain(&sc->errors, "no progress reading for 60 s",
                             RD_KAFKA_RESP_ERR__TIMED_OUT, err, errlen);
            return -1;
        }
    }
    return 0;
}

static void dq_scan_close(dq_scanner *sc)
{
    for (int i = 0; sc->parts != NULL && i < sc->n; i++) {
        if (sc->parts[i].started) {
            rd_kafka_consume_stop(sc->rkt, sc->parts[i].id);
        }
    }
    if (sc->queue != NULL) {
        rd_kafka_queue_destroy(sc->queue);
    }
    if (sc->rkt != NULL) {
        rd_kafka_topic_destroy(sc->rkt);
    }
    if (sc->rk != NULL) {
        rd_kafka_destroy(sc->rk);
    }
    free(sc->parts);
}

int dq_scan_run(const pw_kafka_settings *s, int verbose, const char *topic, dq_signals *sig,
                const dq_scan_hooks *hooks, dq_scan_result *res, char *err, size_t errlen)
{
    dq_scanner sc;
    memset(&sc, 0, sizeof sc);
    memset(res, 0, sizeof *res);
    sc.topic = topic;
    int rc = dq_scan_open(&sc, s, verbose, err, errlen);
    if (rc == 0) {
        rc = dq_scan_partitions(&sc, sig, err, errlen);
    }
    if (rc == 0) {
        res->partitions = sc.n;
        rc = dq_scan_snapshot(&sc, &res->snapshot, err, errlen);
    }
    if (rc == 0) {
        rc = dq_scan_start(&sc, err, errlen);
    }
    if (rc == 0) {
        rc = dq_scan_loop(&sc, sig, hooks, res, err, errlen);
    }
    dq_scan_close(&sc);
    if (rc != 0 && dq_signals_poll(sig) > 0) {
        res->interrupted = 1; /* a signal cut a wait short: not Kafka's fault */
        return 0;
    }
    return rc;
}
