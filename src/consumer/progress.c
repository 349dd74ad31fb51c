/* progress: per-partition settled offsets in consumer_progress — the highest
 * offset whose batch was completely written (raw, presence, rollups,
 * census). Duplicates at or below it need no origin lookup. Marks are
 * $max-updated at most once a second: a mark not written yet only means
 * more lookups after a crash (see store_int.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_schema.h"
#include "pw_time.h"
#include "store_int.h"

#define PWC_PROGRESS_EVERY_US 1000000

pwc_tp_progress *pwc_progress_get(pwc_progress_set *p, const char *topic, int32_t part)
{
    char tp[PWC_ORIGIN_LEN];
    pwc_tp_key(topic, part, tp, sizeof(tp));
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->items[i].tp, tp) == 0) {
            return &p->items[i];
        }
    }
    pwc_tp_progress *t = &p->items[p->n++];
    memcpy(t->tp, tp, sizeof(tp));
    t->settled = -1;
    t->max_off = -1;
    return t;
}

static void progress_seen(void *ctx, const char *id, const bson_t *doc)
{
    pwc_progress_set *p = ctx;
    bson_iter_t it;
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->items[i].tp, id) == 0 && bson_iter_init_find(&it, doc, PW_F_SETTLED)) {
            p->items[i].settled = bson_iter_as_int64(&it);
        }
    }
}

int pwc_progress_read(pwc_store *s, mongoc_database_t *db, pwc_progress_set *p, char *err,
                      size_t errlen)
{
    if (p->loaded) {
        return 0;
    }
    const char **ids = calloc(p->n ? p->n : 1, sizeof(char *));
    if (!ids) {
        return -1;
    }
    for (size_t i = 0; i < p->n; i++) {
        ids[i] = p->items[i].tp;
    }
    int rc = pwc_find_ids(s, db, PW_COLL_PROGRESS, ids, p->n, NULL, progress_seen, p,
                          "settled marks", err, errlen);
    free(ids);
    p->loaded = rc == 0;
    return rc;
}

static int progress_write(pwc_store *s, mongoc_database_t *db, const pwc_progress_set *p, char *err,
                          size_t errlen)
{
    mongoc_collection_t *coll = mongoc_database_get_collection(db, PW_COLL_PROGRESS);
    pwc_update_batch ub;
    pwc_ub_init(&ub, coll, err, errlen);
    bson_t upsert = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&upsert, "upsert", true);
    for (size_t i = 0; i < p->n; i++) {
        bson_t sel = BSON_INITIALIZER, upd = BSON_INITIALIZER, mx;
        BSON_APPEND_UTF8(&sel, PW_F_ID, p->items[i].tp);
        pw_store_plan_check(s->plans, coll, &sel, "settled mark write", PW_QUERY_FILTERED);
        BSON_APPEND_DOCUMENT_BEGIN(&upd, "$max", &mx);
        BSON_APPEND_INT64(&mx, PW_F_SETTLED, p->items[i].max_off);
        bson_append_document_end(&upd, &mx);
        mongoc_bulk_operation_update_one_with_opts(pwc_ub_next(&ub), &sel, &upd, &upsert, NULL);
        bson_destroy(&sel);
        bson_destroy(&upd);
    }
    bson_destroy(&upsert);
    int rc = pwc_ub_finish(&ub);
    pwc_bulk_result r = ub.total;
    mongoc_collection_destroy(coll);
    /* a concurrent first upsert of the same partition may collide: harmless,
     * the settled mark is a lower bound and the next batch raises it */
    if (rc == 0 && r.other_error) {
        snprintf(err, errlen, "consumer_progress: write error");
        return -1;
    }
    return rc;
}

int pwc_progress_note(pwc_store *s, mongoc_database_t *db, const pwc_progress_set *batch, int force,
                      char *err, size_t errlen)
{
    for (size_t i = 0; i < batch->n; i++) {
        size_t q = 0;
        while (q < s->npending && strcmp(s->pending[q].tp, batch->items[i].tp) != 0) {
            q++;
        }
        if (q == s->npending) {
            if (s->npending == PWC_PENDING_TP) {
                force = 1;
                break;
            }
            s->pending[q] = batch->items[i];
            s->npending++;
        }
        if (batch->items[i].max_off > s->pending[q].max_off) {
            s->pending[q].max_off = batch->items[i].max_off;
        }
    }
    int64_t now = pw_monotonic_us();
    if (s->npending == 0 || (!force && now - s->progress_written_us < PWC_PROGRESS_EVERY_US)) {
        return 0;
    }
    pwc_progress_set all = {s->pending, s->npending, 0};
    int rc = progress_write(s, db, &all, err, errlen);
    if (rc == 0) {
        s->npending = 0;
        s->progress_written_us = now;
    }
    return rc;
}
