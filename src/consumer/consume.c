/* consume: batching, dead-lettering, storing and committing (see consume.h). */
#include "consume.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "normalize.h"
#include "pipeline.h"
#include "pw_kafka.h"
#include "pw_log.h"
#include "pw_time.h"

#define PWC_DLQ_FLUSH_MS 10000
#define PWC_LAG_EVERY_US 1000000

typedef struct {
    rd_kafka_message_t *msg;
    pwc_record rec;
    int prepared;
    const char *reason; /* NULL: storable */
    char detail[256];
    int stored;              /* the store acknowledged it */
    pwc_dlq_ticket *dlq;     /* its dead letter in flight or acknowledged (a reference) */
    int dead_letter_counted; /* counted in dead_lettered once */
} pwc_item;

typedef struct {
    pwc_item **items;
    size_t n, cap;
    int64_t first_us;
} pwc_batch;

struct pwc_consumer {
    const pwc_config *cfg;
    pwc_store *store;
    pwc_dlq *dlq;
    pwc_ops *ops;
    rd_kafka_t *rk;
    pwc_batch batch;
    pwc_pipeline *pipeline; /* pipeline marks of the partitions this process handles */
    rd_kafka_topic_partition_list_t *to_commit; /* next offsets, stored but not committed */
    rd_kafka_topic_partition_list_t *committed; /* of partitions idle since assigned (lag) */
    volatile sig_atomic_t *stop;
    int paused;
    int64_t last_lag_us;
};

/* ---- batch --------------------------------------------------------------- */

static int batch_add(pwc_batch *b, rd_kafka_message_t *m)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        pwc_item **items = realloc(b->items, cap * sizeof(*items));
        if (!items) {
            return -1;
        }
        b->items = items;
        b->cap = cap;
    }
    pwc_item *it = calloc(1, sizeof(*it));
    if (!it) {
        return -1;
    }
    it->msg = m;
    if (b->n == 0) {
        b->first_us = pw_monotonic_us();
    }
    b->items[b->n++] = it;
    return 0;
}

static void item_free(pwc_item *it)
{
    pwc_dlq_ticket_release(it->dlq);
    rd_kafka_message_destroy(it->msg);
    free(it);
}

static void batch_clear(pwc_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        item_free(b->items[i]);
    }
    b->n = 0;
}

static int in_list(const rd_kafka_topic_partition_list_t *parts, const rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    for (int i = 0; i < parts->cnt; i++) {
        if (parts->elems[i].partition == m->partition &&
            strcmp(parts->elems[i].topic, topic) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Drops the records of revoked partitions: never stored here, the new owner
 * reads them again from the committed offset. */
static size_t batch_drop(pwc_batch *b, const rd_kafka_topic_partition_list_t *parts)
{
    size_t kept = 0, dropped = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (in_list(parts, b->items[i]->msg)) {
            item_free(b->items[i]);
            dropped++;
        } else {
            b->items[kept++] = b->items[i];
        }
    }
    b->n = kept;
    return dropped;
}

/* ---- offsets ------------------------------------------------------------- */

static void remember_offsets(pwc_consumer *c)
{
    for (size_t i = 0; i < c->batch.n; i++) {
        const rd_kafka_message_t *m = c->batch.items[i]->msg;
        const char *topic = rd_kafka_topic_name(m->rkt);
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(c->to_commit, topic, m->partition);
        if (!tp) {
            tp = rd_kafka_topic_partition_list_add(c->to_commit, topic, m->partition);
        }
        if (m->offset + 1 > tp->offset) {
            tp->offset = m->offset + 1;
        }
    }
}

static int commit_list(pwc_consumer *c, rd_kafka_topic_partition_list_t *list)
{
    if (list->cnt == 0) {
        return 0;
    }
    rd_kafka_resp_err_t e = rd_kafka_commit(c->rk, list, 0);
    if (e) {
        pw_prom_add(c->ops->commit_errors, NULL, 1);
        pw_log(PW_LOG_WARN, "commit_failed", "offset commit failed: %s (kept for the next one)",
               rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

static void commit_pending(pwc_consumer *c)
{
    if (commit_list(c, c->to_commit) == 0) {
        rd_kafka_topic_partition_list_destroy(c->to_commit);
        c->to_commit = rd_kafka_topic_partition_list_new(8);
    }
}

/* After each stored batch: the commit runs in the background and to_commit
 * keeps the newest stored offsets, so a failed commit is superseded by the
 * next one, and revoke and shutdown still commit them synchronously. */
static void commit_async(pwc_consumer *c)
{
    if (c->to_commit->cnt > 0) {
        rd_kafka_commit(c->rk, c->to_commit, 1);
    }
}

static void on_offset_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    (void)rk;
    (void)offsets;
    pwc_consumer *c = opaque;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET) {
        return;
    }
    pw_prom_add(c->ops->commit_errors, NULL, 1);
    pw_log(PW_LOG_WARN, "commit_failed", "offset commit failed: %s (the next one supersedes it)",
           rd_kafka_err2str(err));
}

/* ---- pause / resume -------------------------------------------------------- */

static void set_paused(pwc_consumer *c, int paused, const char *why)
{
    if (c->paused == paused) {
        return;
    }
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(c->rk, &parts) == RD_KAFKA_RESP_ERR_NO_ERROR && parts) {
        if (paused) {
            rd_kafka_pause_partitions(c->rk, parts);
        } else {
            rd_kafka_resume_partitions(c->rk, parts);
        }
        rd_kafka_topic_partition_list_destroy(parts);
    }
    c->paused = paused;
    pw_prom_set(c->ops->paused, NULL, paused);
    pw_log(paused ? PW_LOG_WARN : PW_LOG_INFO, paused ? "partitions_paused" : "partitions_resumed",
           "%s", paused ? why : "writes succeed again: partitions resumed");
}

/* ---- rebalance ------------------------------------------------------------- */

/* A partition this process no longer owns has no lag series here: the new
 * owner exports it. */
static void drop_lag(pwc_consumer *c, const rd_kafka_topic_partition_list_t *parts)
{
    char part[16];
    for (int i = 0; i < parts->cnt; i++) {
        snprintf(part, sizeof(part), "%" PRId32, parts->elems[i].partition);
        const char *labels[] = {parts->elems[i].topic, part};
        pw_prom_remove(c->ops->lag, labels);
    }
}

static void log_parts(const char *event, const rd_kafka_topic_partition_list_t *parts)
{
    json_t *arr = json_array();
    for (int i = 0; i < parts->cnt; i++) {
        json_array_append_new(
            arr, json_sprintf("%s:%" PRId32, parts->elems[i].topic, parts->elems[i].partition));
    }
    pw_log_fields(PW_LOG_INFO, event, json_pack("{s:o}", "partitions", arr), "%d partitions",
                  parts->cnt);
}

static void on_revoke(pwc_consumer *c, rd_kafka_topic_partition_list_t *parts)
{
    int lost = rd_kafka_assignment_lost(c->rk);
    /* dead letters still in flight keep their own ticket reference */
    size_t dropped = batch_drop(&c->batch, parts);
    rd_kafka_topic_partition_list_t *mine = rd_kafka_topic_partition_list_new(parts->cnt);
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(
            c->to_commit, parts->elems[i].topic, parts->elems[i].partition);
        if (tp) {
            rd_kafka_topic_partition_list_add(mine, tp->topic, tp->partition)->offset = tp->offset;
            rd_kafka_topic_partition_list_del(c->to_commit, parts->elems[i].topic,
                                              parts->elems[i].partition);
        }
    }
    if (!lost) {
        commit_list(c, mine);
    }
    rd_kafka_topic_partition_list_destroy(mine);
    drop_lag(c, parts);
    log_parts(lost ? "partitions_lost" : "partitions_revoked", parts);
    if (dropped) {
        pw_log(PW_LOG_INFO, "batch_dropped", "%zu unstored records of revoked partitions dropped",
               dropped);
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    pwc_consumer *c = opaque;
    int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *e = NULL;
    /* a partition that comes back may have been written by another owner */
    pwc_store_forget_buckets(c->store);
    rd_kafka_topic_partition_list_destroy(c->committed);
    c->committed = rd_kafka_topic_partition_list_new(8);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (cooperative) {
            e = rd_kafka_incremental_assign(rk, parts);
        } else {
            rd_kafka_assign(rk, parts);
        }
        if (c->paused) {
            rd_kafka_pause_partitions(rk, parts);
        }
        atomic_store(&c->ops->kafka_joined, 1);
        log_parts("partitions_assigned", parts);
    } else {
        on_revoke(c, parts);
        if (cooperative) {
            e = rd_kafka_incremental_unassign(rk, parts);
        } else {
            rd_kafka_assign(rk, NULL);
        }
    }
    if (e) {
        pw_log(PW_LOG_ERROR, "rebalance_failed", "%s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
}

static void on_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    pw_log_level l = level <= LOG_ERR       ? PW_LOG_ERROR
                     : level == LOG_WARNING ? PW_LOG_WARN
                     : level <= LOG_INFO    ? PW_LOG_INFO
                                            : PW_LOG_DEBUG;
    pw_log(l, "kafka", "%s: %s", fac, buf);
}

static void on_kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)opaque;
    pw_log(err == RD_KAFKA_RESP_ERR__FATAL ? PW_LOG_ERROR : PW_LOG_WARN, "kafka_error", "%s: %s",
           rd_kafka_err2name(err), reason);
}

/* ---- setup --------------------------------------------------------------- */

static int consumer_conf(const pwc_config *cfg, rd_kafka_conf_t *conf, char *err, size_t errlen)
{
    char session[24], heartbeat[24];
    snprintf(session, sizeof(session), "%ld", cfg->session_timeout_ms);
    snprintf(heartbeat, sizeof(heartbeat), "%ld", cfg->session_timeout_ms / 4);
    const char *kv[][2] = {
        {"group.id", cfg->group},
        {"partition.assignment.strategy", "cooperative-sticky"},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
        {"session.timeout.ms", session},
        {"heartbeat.interval.ms", heartbeat},
        {"fetch.wait.max.ms", "100"},
        {"enable.partition.eof", "false"},
    };
    for (size_t i = 0; i < sizeof(kv) / sizeof(*kv); i++) {
        if (pw_kafka_conf_set(conf, kv[i][0], kv[i][1], err, errlen) != 0) {
            return -1;
        }
    }
    return 0;
}

pwc_consumer *pwc_consumer_new(const pwc_config *cfg, pwc_store *store, pwc_dlq *dlq, pwc_ops *ops,
                               volatile sig_atomic_t *stop, char *err, size_t errlen)
{
    pwc_consumer *c = calloc(1, sizeof(*c));
    if (!c) {
        return NULL;
    }
    c->cfg = cfg;
    c->store = store;
    c->dlq = dlq;
    c->ops = ops;
    c->stop = stop;
    c->to_commit = rd_kafka_topic_partition_list_new(8);
    c->committed = rd_kafka_topic_partition_list_new(8);
    if ((c->pipeline = pwc_pipeline_new()) == NULL) {
        snprintf(err, errlen, "out of memory");
        pwc_consumer_free(c);
        return NULL;
    }
    rd_kafka_conf_t *conf = pw_kafka_conf_new(&cfg->kafka, err, errlen);
    if (!conf || consumer_conf(cfg, conf, err, errlen) != 0) {
        if (conf) {
            rd_kafka_conf_destroy(conf);
        }
        pwc_consumer_free(c);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(conf, on_offset_commit);
    rd_kafka_conf_set_log_cb(conf, on_kafka_log);
    rd_kafka_conf_set_error_cb(conf, on_kafka_error);
    rd_kafka_conf_set_opaque(conf, c);
    char kerr[256];
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kerr, sizeof(kerr));
    if (!c->rk) {
        snprintf(err, errlen, "consumer: %s", kerr);
        rd_kafka_conf_destroy(conf);
        pwc_consumer_free(c);
        return NULL;
    }
    rd_kafka_poll_set_consumer(c->rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(topics, cfg->topic_telemetry, RD_KAFKA_PARTITION_UA);
    rd_kafka_topic_partition_list_add(topics, cfg->topic_alerts, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        snprintf(err, errlen, "subscribe: %s", rd_kafka_err2str(e));
        pwc_consumer_free(c);
        return NULL;
    }
    return c;
}

void pwc_consumer_free(pwc_consumer *c)
{
    if (!c) {
        return;
    }
    batch_clear(&c->batch);
    free(c->batch.items);
    pwc_pipeline_free(c->pipeline);
    if (c->rk) {
        rd_kafka_destroy(c->rk);
    }
    if (c->to_commit) {
        rd_kafka_topic_partition_list_destroy(c->to_commit);
    }
    if (c->committed) {
        rd_kafka_topic_partition_list_destroy(c->committed);
    }
    free(c);
}

/* ---- one poll ------------------------------------------------------------- */

static void poll_once(pwc_consumer *c, int timeout_ms)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, timeout_ms);
    if (!m) {
        return;
    }
    if (m->err) {
        pw_log(PW_LOG_WARN, "consume_error", "%s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return;
    }
    if (batch_add(&c->batch, m) != 0) {
        pw_log(PW_LOG_ERROR, "out_of_memory", "cannot queue a record; stopping");
        rd_kafka_message_destroy(m);
        *c->stop = 1;
    }
}

/* Keeps serving the group (heartbeats, rebalances) while waiting. */
static void backoff_wait(pwc_consumer *c, long ms)
{
    int64_t until = pw_monotonic_us() + ms * 1000;
    while (!*c->stop) {
        int64_t left = (until - pw_monotonic_us()) / 1000;
        if (left <= 0) {
            break;
        }
        poll_once(c, left > 100 ? 100 : (int)left);
    }
}

/* ---- batch processing -------------------------------------------------------- */

static void log_dead_letter(const pwc_item *it)
{
    pw_log_fields(PW_LOG_WARN, "dead_letter",
                  json_pack("{s:s,s:s,s:i,s:I}", "reason", it->reason, "topic",
                            rd_kafka_topic_name(it->msg->rkt), "partition", (int)it->msg->partition,
                            "offset", (json_int_t)it->msg->offset),
                  "%s", it->detail);
}

static void prepare_items(pwc_consumer *c)
{
    for (size_t i = 0; i < c->batch.n; i++) {
        pwc_item *it = c->batch.items[i];
        if (it->prepared) {
            continue;
        }
        it->prepared = 1;
        if (pwc_decode_record(it->msg->payload, it->msg->len, &it->rec, &it->reason, it->detail,
                              sizeof(it->detail)) != 0) {
            log_dead_letter(it);
        }
    }
}

/* Produces every dead letter not yet acknowledged (again when its last
 * attempt failed) and waits for the answers. 0 when all are acknowledged. */
static int dead_letter(pwc_consumer *c)
{
    int queued = 0;
    for (size_t i = 0; i < c->batch.n; i++) {
        pwc_item *it = c->batch.items[i];
        if (!it->reason || (it->dlq && pwc_dlq_ticket_status(it->dlq) >= 0)) {
            continue;
        }
        pwc_dlq_ticket_release(it->dlq);
        it->dlq = pwc_dlq_produce(c->dlq, it->msg, it->reason, it->detail);
        queued++;
    }
    if (queued > 0) {
        pwc_dlq_flush(c->dlq, PWC_DLQ_FLUSH_MS);
    }
    int rc = 0;
    for (size_t i = 0; i < c->batch.n; i++) {
        pwc_item *it = c->batch.items[i];
        if (!it->reason) {
            continue;
        }
        if (pwc_dlq_ticket_status(it->dlq) <= 0) {
            rc = -1;
        } else if (!it->dead_letter_counted) {
            it->dead_letter_counted = 1;
            const char *labels[] = {it->reason};
            pw_prom_add(c->ops->dead_lettered, labels, 1);
        }
    }
    atomic_store(&c->ops->dlq_unavailable, rc != 0);
    pw_prom_set(c->ops->dlq_down, NULL, rc != 0);
    return rc;
}

static void count_stored(pwc_consumer *c, const pwc_entry *entries, size_t n,
                         const pwc_write_result *res)
{
    const char *tel[] = {"telemetry"}, *alr[] = {"alerts"};
    pw_prom_add(c->ops->stored, tel, (double)res->stored_readings);
    pw_prom_add(c->ops->stored, alr, (double)res->stored_alerts);
    pw_prom_add(c->ops->duplicates, NULL, (double)res->duplicates);
    pw_prom_add(c->ops->bucket_reads, NULL, (double)res->bucket_reads);
    pw_prom_add(c->ops->restored, NULL, (double)res->restored);
    static const char *const colls[2] = {"rollup_readings", "rollup_alerts"};
    static const char *const resolutions[2] = {"hour", "day"};
    for (int k = 0; k < 2; k++) {
        for (int r = 0; r < 2; r++) {
            const char *labels[] = {colls[k], resolutions[r]};
            if (res->overflow[k][r] > 0) {
                pw_prom_add(c->ops->overflow, labels, (double)res->overflow[k][r]);
            }
        }
    }
    pw_prom_add(c->ops->census_overflow, NULL, (double)res->census_overflow);
    int64_t now = pw_now_ms();
    for (size_t i = 0; i < n; i++) {
        if (entries[i].rec->received_ms > 0) {
            pw_prom_observe(c->ops->e2e, NULL,
                            (double)(now - entries[i].rec->received_ms) / 1000.0);
        }
    }
    if (res->duplicates) {
        pw_log(PW_LOG_INFO, "duplicates", "%zu deliveries were already stored", res->duplicates);
    }
}

/* One store call for entries[0..n) (owned by items owners[0..n)); marks
 * them stored on success. *refused: the call failed for good. */
static int write_entries(pwc_consumer *c, pwc_entry *entries, pwc_item **owners, size_t n,
                         int *refused, char *err, size_t errlen)
{
    pwc_write_result res;
    int64_t t0 = pw_monotonic_us();
    int rc = pwc_store_write(c->store, entries, n, &res, err, errlen);
    pw_prom_add(c->ops->conflicts, NULL, (double)res.conflicts);
    *refused = rc != 0 && res.refused;
    if (rc != 0) {
        pw_prom_add(c->ops->store_errors, NULL, 1);
        pw_log(PW_LOG_WARN, "store_failed", "batch of %zu not stored: %s", n, err);
        return -1;
    }
    pw_prom_observe(c->ops->write_latency, NULL, (double)(pw_monotonic_us() - t0) / 1e6);
    count_stored(c, entries, n, &res);
    for (size_t i = 0; i < n; i++) {
        owners[i]->stored = 1;
    }
    return 0;
}

static void refuse_item(pwc_item *it, const char *why)
{
    it->reason = PWC_REASON_REFUSED;
    snprintf(it->detail, sizeof(it->detail), "%s", why);
    log_dead_letter(it);
}

/* The store refused a write of entries[0..n): writes halves until the
 * refused records are alone, and gives those the reason store_refused.
 * 0 when everything else is stored, -1 on a transient failure. */
static int isolate(pwc_consumer *c, pwc_entry *entries, pwc_item **owners, size_t n,
                   const char *why)
{
    if (n == 1) {
        char err[512] = "";
        if (pwc_store_discard(c->store, &entries[0], err, sizeof(err)) != 0) {
            pw_log(PW_LOG_WARN, "store_failed", "refused record not discarded: %s", err);
            return -1;
        }
        refuse_item(owners[0], why);
        return 0;
    }
    size_t half = n / 2;
    size_t off[2] = {0, half}, len[2] = {half, n - half};
    for (int k = 0; k < 2; k++) {
        char err[512] = "";
        int refused = 0;
        pw_prom_add(c->ops->isolated, NULL, 1);
        if (write_entries(c, entries + off[k], owners + off[k], len[k], &refused, err,
                          sizeof(err)) == 0) {
            continue;
        }
        if (!refused || isolate(c, entries + off[k], owners + off[k], len[k], err) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Stores the items that are neither stored nor dead letters. 0 when they
 * are (a record the store refuses for good becomes a dead letter), -1 on a
 * transient failure (retry). */
static int store_items(pwc_consumer *c)
{
    size_t n = 0, cap = c->batch.n ? c->batch.n : 1;
    pwc_entry *entries = calloc(cap, sizeof(*entries));
    pwc_item **owners = calloc(cap, sizeof(*owners));
    if (!entries || !owners) {
        free(entries);
        free(owners);
        return -1;
    }
    for (size_t i = 0; i < c->batch.n; i++) {
        pwc_item *it = c->batch.items[i];
        if (it->reason || it->stored) {
            continue;
        }
        entries[n].rec = &it->rec;
        entries[n].topic = rd_kafka_topic_name(it->msg->rkt);
        entries[n].partition = it->msg->partition;
        entries[n].offset = it->msg->offset;
        owners[n++] = it;
    }
    char err[512] = "";
    int refused = 0;
    int rc = n == 0 ? 0 : write_entries(c, entries, owners, n, &refused, err, sizeof(err));
    if (rc != 0 && refused) {
        pw_log(PW_LOG_WARN, "store_refused", "isolating the refused records of %zu: %s", n, err);
        rc = isolate(c, entries, owners, n, err);
    }
    free(entries);
    free(owners);
    return rc;
}

/* Records the handled batch in the pipeline marks (before its offsets are
 * committed, so a dead letter is counted exactly once). 0 or -1 (retry). */
static int note_pipeline(pwc_consumer *c)
{
    pwc_pipe_item *items = calloc(c->batch.n ? c->batch.n : 1, sizeof(*items));
    if (!items) {
        return -1;
    }
    for (size_t i = 0; i < c->batch.n; i++) {
        const pwc_item *it = c->batch.items[i];
        items[i] =
            (pwc_pipe_item){rd_kafka_topic_name(it->msg->rkt), it->msg->partition, it->msg->offset,
                            it->reason, it->reason ? 0 : it->rec.received_ms};
    }
    char err[256];
    int rc =
        pwc_pipeline_write(c->pipeline, c->store, items, c->batch.n, pw_now_ms(), err, sizeof(err));
    free(items);
    if (rc != 0) {
        pw_log(PW_LOG_WARN, "store_failed", "pipeline marks not written: %s", err);
    }
    return rc;
}

/* Stores the batch and writes its dead letters (retrying through outages of
 * the store or the DLQ topic with paused partitions), then commits. -1 only
 * when stopping before that (nothing is committed then). */
static int process_batch(pwc_consumer *c)
{
    long backoff = 100;
    for (;;) {
        prepare_items(c);
        if (c->batch.n == 0) {
            break;
        }
        int stored = store_items(c) == 0;
        int lettered = stored && dead_letter(c) == 0;
        if (lettered && note_pipeline(c) == 0) {
            break;
        }
        if (*c->stop) {
            return -1;
        }
        set_paused(c, 1,
                   stored && !lettered ? "dead-letter topic unavailable: partitions paused"
                                       : "store unavailable: partitions paused");
        backoff_wait(c, backoff);
        backoff = backoff * 2 > c->cfg->retry_max_ms ? c->cfg->retry_max_ms : backoff * 2;
    }
    set_paused(c, 0, NULL);
    if (c->batch.n == 0) {
        return 0;
    }
    pw_prom_observe(c->ops->batch_size, NULL, (double)c->batch.n);
    remember_offsets(c);
    batch_clear(&c->batch);
    commit_async(c);
    return 0;
}

/* ---- housekeeping -------------------------------------------------------------- */

/* Positions of the partitions nothing was consumed from since their
 * assignment (rd_kafka_position has none): their committed offsets, where
 * the group resumes. Only this owner commits them, so each is read from the
 * group once per assignment (c->committed). */
static void fill_committed(pwc_consumer *c, rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *ask = rd_kafka_topic_partition_list_new(parts->cnt);
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        if (tp->offset < 0 &&
            !rd_kafka_topic_partition_list_find(c->committed, tp->topic, tp->partition)) {
            rd_kafka_topic_partition_list_add(ask, tp->topic, tp->partition);
        }
    }
    if (ask->cnt > 0 && rd_kafka_committed(c->rk, ask, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < ask->cnt; i++) {
            rd_kafka_topic_partition_list_add(c->committed, ask->elems[i].topic,
                                              ask->elems[i].partition)
                ->offset = ask->elems[i].offset;
        }
    }
    rd_kafka_topic_partition_list_destroy(ask);
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        const rd_kafka_topic_partition_t *known =
            tp->offset < 0
                ? rd_kafka_topic_partition_list_find(c->committed, tp->topic, tp->partition)
                : NULL;
        if (known && known->offset >= 0) {
            tp->offset = known->offset;
        }
    }
}

static void update_lag(pwc_consumer *c)
{
    int64_t now = pw_monotonic_us();
    if (now - c->last_lag_us < PWC_LAG_EVERY_US) {
        return;
    }
    c->last_lag_us = now;
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(c->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || !parts) {
        return;
    }
    rd_kafka_position(c->rk, parts);
    fill_committed(c, parts);
    char part[16];
    for (int i = 0; i < parts->cnt; i++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        if (rd_kafka_get_watermark_offsets(c->rk, tp->topic, tp->partition, &lo, &hi) || hi < 0) {
            continue;
        }
        int64_t pos = tp->offset >= 0 ? tp->offset : lo;
        snprintf(part, sizeof(part), "%" PRId32, tp->partition);
        const char *labels[] = {tp->topic, part};
        pw_prom_set(c->ops->lag, labels, (double)(hi > pos ? hi - pos : 0));
    }
    rd_kafka_topic_partition_list_destroy(parts);
}

int pwc_consumer_run(pwc_consumer *c)
{
    while (!*c->stop) {
        int timeout = 100;
        if (c->batch.n > 0) {
            int64_t left = c->cfg->batch_ms - (pw_monotonic_us() - c->batch.first_us) / 1000;
            timeout = left < 0 ? 0 : (int)left;
        }
        poll_once(c, timeout);
        int64_t age_ms = c->batch.n ? (pw_monotonic_us() - c->batch.first_us) / 1000 : 0;
        if (c->batch.n >= (size_t)c->cfg->batch_max ||
            (c->batch.n > 0 && age_ms >= c->cfg->batch_ms)) {
            process_batch(c);
        }
        update_lag(c);
    }
    pw_log(PW_LOG_INFO, "stopping", "finishing the batch of %zu, committing, leaving the group",
           c->batch.n);
    int rc = process_batch(c);
    if (rc != 0) {
        /* unstored records are read again by the next owner; dead letters
         * in flight hold their own ticket reference */
        batch_clear(&c->batch);
    }
    char err[256];
    if (rc == 0 && pwc_store_flush_progress(c->store, err, sizeof(err)) != 0) {
        pw_log(PW_LOG_WARN, "progress_not_saved", "settled offsets not saved: %s", err);
    }
    commit_pending(c);
    rd_kafka_consumer_close(c->rk);
    pw_log(PW_LOG_INFO, "stopped", "left the consumer group");
    return 0;
}
