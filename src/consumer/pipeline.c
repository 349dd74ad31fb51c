/* pipeline: folding handled batches into the pipeline marks and their
 * guarded writes (see pipeline.h). A mark is read once by _id, then known in
 * memory; a write that does not land (another owner wrote the mark) or that
 * fails forgets it, so the next attempt reads it again and folds only what
 * the stored mark does not hold yet. */
#include "pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_log.h"
#include "pw_pipeline.h"
#include "pw_schema.h"
#include "record.h"
#include "store_int.h"

#define PWC_PIPE_MARKS 64
#define PWC_PIPE_ATTEMPTS 4
#define PWC_PIPE_REASON_BYTES 32

typedef struct {
    char id[PWC_ORIGIN_LEN + 16];
    char tp[PWC_ORIGIN_LEN];
    char topic[PWC_ORIGIN_LEN];
    int32_t partition;
    int loaded; /* read from the store (or written) since last forgotten */
    int stored; /* the store holds the mark (update, not insert) */
    int64_t v, hw, last_ms, dl_total;
    size_t nreasons;
    char reasons[PW_PIPE_MAX_REASONS][PWC_PIPE_REASON_BYTES];
    int64_t dl[PW_PIPE_MAX_REASONS];
    int64_t minute[PW_LAT_MINUTES]; /* minute start (ms) held by each slot, 0 none */
    pw_lat_hist hist[PW_LAT_MINUTES];
    int touched; /* part of the running write */
} pwc_pipe_mark;

struct pwc_pipeline {
    pwc_pipe_mark *marks[PWC_PIPE_MARKS];
    size_t n;
};

pwc_pipeline *pwc_pipeline_new(void)
{
    return calloc(1, sizeof(pwc_pipeline));
}

void pwc_pipeline_free(pwc_pipeline *p)
{
    if (!p) {
        return;
    }
    for (size_t i = 0; i < p->n; i++) {
        free(p->marks[i]);
    }
    free(p);
}

static void mark_reset(pwc_pipe_mark *m)
{
    char id[sizeof(m->id)], tp[sizeof(m->tp)], topic[sizeof(m->topic)];
    int32_t part = m->partition;
    memcpy(id, m->id, sizeof(id));
    memcpy(tp, m->tp, sizeof(tp));
    memcpy(topic, m->topic, sizeof(topic));
    memset(m, 0, sizeof(*m));
    memcpy(m->id, id, sizeof(id));
    memcpy(m->tp, tp, sizeof(tp));
    memcpy(m->topic, topic, sizeof(topic));
    m->partition = part;
    m->hw = -1;
}

/* The mark of (topic, partition), created unloaded; NULL when full. */
static pwc_pipe_mark *mark_of(pwc_pipeline *p, const char *topic, int32_t part)
{
    char tp[PWC_ORIGIN_LEN];
    pwc_tp_key(topic, part, tp, sizeof(tp));
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->marks[i]->tp, tp) == 0) {
            return p->marks[i];
        }
    }
    if (p->n == PWC_PIPE_MARKS) {
        return NULL;
    }
    pwc_pipe_mark *m = calloc(1, sizeof(*m));
    if (!m) {
        return NULL;
    }
    memcpy(m->tp, tp, sizeof(tp));
    snprintf(m->id, sizeof(m->id), "%s%s", PW_PIPE_ID_PREFIX, tp);
    snprintf(m->topic, sizeof(m->topic), "%s", topic);
    m->partition = part;
    mark_reset(m);
    p->marks[p->n++] = m;
    return m;
}

/* ---- folding --------------------------------------------------------------- */

static void fold_dead_letter(pwc_pipe_mark *m, const char *reason)
{
    size_t i = 0;
    while (i < m->nreasons && strcmp(m->reasons[i], reason) != 0) {
        i++;
    }
    if (i == m->nreasons) {
        if (m->nreasons == PW_PIPE_MAX_REASONS - 1 && strcmp(reason, PW_PIPE_OTHER_REASON) != 0) {
            fold_dead_letter(m, PW_PIPE_OTHER_REASON);
            return;
        }
        snprintf(m->reasons[i], PWC_PIPE_REASON_BYTES, "%s", reason);
        m->dl[i] = 0;
        m->nreasons++;
    }
    m->dl[i]++;
    m->dl_total++;
}

static void fold_latency(pwc_pipe_mark *m, int64_t now_ms, int64_t received_ms)
{
    int64_t minute = now_ms - now_ms % 60000;
    size_t slot = (size_t)((minute / 60000) % PW_LAT_MINUTES);
    if (m->minute[slot] != minute) {
        memset(&m->hist[slot], 0, sizeof(m->hist[slot]));
        m->minute[slot] = minute;
    }
    pw_lat_add(&m->hist[slot], now_ms - received_ms, 1);
}

/* Folds the items of m's partition above its hw (in any order). */
static void fold(pwc_pipe_mark *m, const pwc_pipe_item *items, size_t n, int64_t now_ms)
{
    int64_t base = m->hw;
    for (size_t i = 0; i < n; i++) {
        const pwc_pipe_item *it = &items[i];
        if (it->partition != m->partition || strcmp(it->topic, m->topic) != 0 ||
            it->offset <= base) {
            continue;
        }
        if (it->reason) {
            fold_dead_letter(m, it->reason);
        } else if (it->received_ms > 0) {
            fold_latency(m, now_ms, it->received_ms);
        }
        if (it->offset > m->hw) {
            m->hw = it->offset;
        }
        m->last_ms = now_ms;
    }
}

/* ---- documents ------------------------------------------------------------- */

static void read_reasons(pwc_pipe_mark *m, const bson_t *doc)
{
    bson_iter_t it, sub;
    if (!bson_iter_init_find(&it, doc, PW_F_DEAD_LETTERS) || !BSON_ITER_HOLDS_DOCUMENT(&it) ||
        !bson_iter_recurse(&it, &sub)) {
        return;
    }
    while (bson_iter_next(&sub) && m->nreasons < PW_PIPE_MAX_REASONS) {
        snprintf(m->reasons[m->nreasons], PWC_PIPE_REASON_BYTES, "%s", bson_iter_key(&sub));
        m->dl[m->nreasons++] = bson_iter_as_int64(&sub);
    }
}

static void pwc_pipe_latency_entry(void *ctx, int64_t minute, const uint8_t *h, uint32_t hlen)
{
    pwc_pipe_mark *m = ctx;
    size_t slot = (size_t)((minute / 60000) % PW_LAT_MINUTES);
    memset(&m->hist[slot], 0, sizeof(m->hist[slot]));
    m->minute[slot] = minute;
    pw_lat_unpack_add(&m->hist[slot], h, hlen);
}

static void mark_seen(void *ctx, const char *id, const bson_t *doc)
{
    (void)id;
    pwc_pipe_mark *m = ctx;
    bson_iter_t it;
    m->stored = 1;
    m->v = bson_iter_init_find(&it, doc, PW_F_VERSION) ? bson_iter_as_int64(&it) : 0;
    m->hw = bson_iter_init_find(&it, doc, PW_F_HW) ? bson_iter_as_int64(&it) : -1;
    if (bson_iter_init_find(&it, doc, PW_F_LAST_MS) && BSON_ITER_HOLDS_DATE_TIME(&it)) {
        m->last_ms = bson_iter_date_time(&it);
    }
    read_reasons(m, doc);
    for (size_t i = 0; i < m->nreasons; i++) {
        m->dl_total += m->dl[i];
    }
    pw_lat_each(doc, pwc_pipe_latency_entry, m);
}

static int mark_load(pwc_store *s, mongoc_database_t *db, pwc_pipe_mark *m, char *err,
                     size_t errlen)
{
    mark_reset(m);
    const char *ids[] = {m->id};
    int rc = pwc_find_ids(s, db, PW_COLL_PROGRESS, ids, 1, NULL, mark_seen, m, "pipeline mark", err,
                          errlen);
    m->loaded = rc == 0;
    return rc;
}

/* The fields every write sets (the version is the next one). */
static void mark_fields(const pwc_pipe_mark *m, int64_t now_ms, bson_t *d)
{
    bson_t sub, arr, ent;
    BSON_APPEND_UTF8(d, PW_F_KIND, PW_PIPE_KIND);
    BSON_APPEND_UTF8(d, PW_F_TP, m->tp);
    BSON_APPEND_UTF8(d, PW_F_TOPIC, m->topic);
    BSON_APPEND_INT32(d, PW_F_PARTITION, m->partition);
    BSON_APPEND_INT64(d, PW_F_HW, m->hw);
    BSON_APPEND_DATE_TIME(d, PW_F_LAST_MS, m->last_ms);
    BSON_APPEND_DOCUMENT_BEGIN(d, PW_F_DEAD_LETTERS, &sub);
    for (size_t i = 0; i < m->nreasons; i++) {
        BSON_APPEND_INT64(&sub, m->reasons[i], m->dl[i]);
    }
    bson_append_document_end(d, &sub);
    int64_t oldest = now_ms - now_ms % 60000 - (int64_t)(PW_LAT_MINUTES - 1) * 60000;
    BSON_APPEND_ARRAY_BEGIN(d, PW_F_LATENCY, &arr);
    char key[16];
    uint32_t k = 0;
    for (size_t i = 0; i < PW_LAT_MINUTES; i++) {
        if (m->minute[i] < oldest || m->hist[i].total == 0) {
            continue;
        }
        uint8_t packed[PW_LAT_PACKED_MAX];
        size_t len = pw_lat_pack(&m->hist[i], packed);
        const char *kp = NULL;
        bson_uint32_to_string(k++, &kp, key, sizeof(key));
        bson_append_document_begin(&arr, kp, -1, &ent);
        BSON_APPEND_DATE_TIME(&ent, PW_F_MINUTE, m->minute[i]);
        BSON_APPEND_BINARY(&ent, PW_F_HIST, BSON_SUBTYPE_BINARY, packed, (uint32_t)len);
        bson_append_document_end(&arr, &ent);
    }
    bson_append_array_end(d, &arr);
    BSON_APPEND_INT64(d, PW_F_VERSION, m->v + 1);
}

/* ---- guarded write --------------------------------------------------------- */

/* Writes the touched marks: updates under {_id, _v}, inserts of new ones.
 * 1 when every write landed, 0 when one lost a race, -1 on failure. */
static int marks_write(pwc_pipeline *p, pwc_store *s, mongoc_database_t *db, int64_t now_ms,
                       char *err, size_t errlen)
{
    mongoc_collection_t *coll = mongoc_database_get_collection(db, PW_COLL_PROGRESS);
    pwc_update_batch ub;
    pwc_ub_init(&ub, coll, err, errlen);
    mongoc_bulk_operation_t *ins = pwc_bulk_new(coll);
    size_t nupd = 0, nins = 0;
    for (size_t i = 0; i < p->n; i++) {
        pwc_pipe_mark *m = p->marks[i];
        if (!m->touched) {
            continue;
        }
        bson_t doc = BSON_INITIALIZER;
        if (m->stored) {
            bson_t sel = BSON_INITIALIZER, upd = BSON_INITIALIZER, set;
            BSON_APPEND_UTF8(&sel, PW_F_ID, m->id);
            BSON_APPEND_INT64(&sel, PW_F_VERSION, m->v);
            pw_store_plan_check(s->plans, coll, &sel, "pipeline mark write", PW_QUERY_FILTERED);
            BSON_APPEND_DOCUMENT_BEGIN(&upd, "$set", &set);
            mark_fields(m, now_ms, &set);
            bson_append_document_end(&upd, &set);
            mongoc_bulk_operation_update_one_with_opts(pwc_ub_next(&ub), &sel, &upd, NULL, NULL);
            bson_destroy(&sel);
            bson_destroy(&upd);
            nupd++;
        } else {
            BSON_APPEND_UTF8(&doc, PW_F_ID, m->id);
            mark_fields(m, now_ms, &doc);
            mongoc_bulk_operation_insert_with_opts(ins, &doc, NULL, NULL);
            nins++;
        }
        bson_destroy(&doc);
    }
    int urc = pwc_ub_finish(&ub);
    pwc_bulk_result ir = {0};
    int dups[PWC_PIPE_MARKS] = {0};
    ir.dup = dups;
    int irc = 0;
    if (nins > 0 && urc == 0) {
        irc = pwc_bulk_exec(ins, &ir, nins, err, errlen);
    } else {
        mongoc_bulk_operation_destroy(ins);
    }
    mongoc_collection_destroy(coll);
    size_t ndup = 0;
    for (size_t i = 0; i < nins; i++) {
        ndup += dups[i] ? 1 : 0;
    }
    if (ub.total.conflict || ir.conflict || ndup > 0 ||
        (urc == 0 && ub.total.n_matched < (int64_t)nupd)) {
        return 0;
    }
    if (urc != 0 || irc != 0 || ub.total.other_error || ir.other_error) {
        if (err[0] == '\0') {
            snprintf(err, errlen, "pipeline marks: write error");
        }
        return -1;
    }
    return 1;
}

/* Marks the partitions of items as touched, reading those not known. */
static int touch_marks(pwc_pipeline *p, pwc_store *s, mongoc_database_t *db,
                       const pwc_pipe_item *items, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < p->n; i++) {
        p->marks[i]->touched = 0;
    }
    for (size_t i = 0; i < n; i++) {
        pwc_pipe_mark *m = mark_of(p, items[i].topic, items[i].partition);
        if (!m) {
            snprintf(err, errlen, "pipeline marks: more than %d partitions", PWC_PIPE_MARKS);
            return -1;
        }
        if (!m->loaded && mark_load(s, db, m, err, errlen) != 0) {
            return -1;
        }
        m->touched = 1;
    }
    return 0;
}

static int write_attempt(pwc_pipeline *p, pwc_store *s, mongoc_database_t *db,
                         const pwc_pipe_item *items, size_t n, int64_t now_ms, char *err,
                         size_t errlen)
{
    if (touch_marks(p, s, db, items, n, err, errlen) != 0) {
        return -1;
    }
    for (size_t i = 0; i < p->n; i++) {
        if (p->marks[i]->touched) {
            fold(p->marks[i], items, n, now_ms);
        }
    }
    int rc = marks_write(p, s, db, now_ms, err, errlen);
    for (size_t i = 0; i < p->n; i++) {
        pwc_pipe_mark *m = p->marks[i];
        if (!m->touched) {
            continue;
        }
        if (rc == 1) {
            m->stored = 1;
            m->v++;
        } else {
            m->loaded = 0; /* read it again: the store holds the truth */
        }
    }
    return rc;
}

int pwc_pipeline_write(pwc_pipeline *p, pwc_store *s, const pwc_pipe_item *items, size_t n,
                       int64_t now_ms, char *err, size_t errlen)
{
    if (n == 0) {
        return 0;
    }
    mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
    mongoc_database_t *db = mongoc_client_get_database(c, s->db);
    int rc = 0;
    for (int a = 0; a < PWC_PIPE_ATTEMPTS; a++) {
        err[0] = '\0';
        rc = write_attempt(p, s, db, items, n, now_ms, err, errlen);
        if (rc != 0) {
            break;
        }
        pw_log(PW_LOG_INFO, "write_conflict",
               "pipeline marks: a guarded write lost a race; "
               "reading again");
    }
    mongoc_database_destroy(db);
    mongoc_client_pool_push(s->pool, c);
    if (rc == 0) {
        snprintf(err, errlen, "pipeline marks: lost %d races in a row", PWC_PIPE_ATTEMPTS);
    }
    return rc == 1 ? 0 : -1;
}
