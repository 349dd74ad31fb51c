/* retention: the sweep for servers without TTL indexes (FerretDB). Every
 * swept collection carries an hour-aligned date field; each expired hour is
 * one delete with the pushed-down filter {<field>: <hour>}, from the hour
 * the previous sweep reached (consumer_progress "retention|<collection>")
 * up to the cutoff (see store.h).
 *
 * A record is checked against its receive time, not against the time it is
 * stored, so a record consumed late (a backlog, a replay) can land in an
 * hour the sweep has passed already. Once a day (PWC_LOOKBACK_EVERY_MS) the
 * sweep of a collection therefore goes over the PWC_LOOKBACK_MS before its
 * cutoff again: a record stored up to 30 days after its receipt is removed
 * within a day, because it is old. */
#include <stdio.h>
#include <string.h>

#include "pw_log.h"
#include "pw_schema.h"
#include "pw_time.h"
#include "pw_validate.h"
#include "store_int.h"

#define PWC_HOUR_MS 3600000LL
#define PWC_DAY_MS (24 * PWC_HOUR_MS)
#define PWC_LOOKBACK_EVERY_MS PWC_DAY_MS
/* How far before the cutoff a late record can land: its ts is at most
 * PW_MAX_PAST_MS older than its receipt, it is consumed at most 30 days
 * after its receipt (the longest Kafka keeps a record), and the next
 * look-back pass runs within a day and a sweep interval; one more day of
 * margin. */
#define PWC_LOOKBACK_MS (PW_MAX_PAST_MS + 30 * PWC_DAY_MS + 2 * PWC_DAY_MS)

typedef struct {
    const char *coll;
    const char *field;
    int64_t ttl_ms;
} sweep_target;

static int64_t reply_count(const bson_t *reply)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, reply, "deletedCount") ? bson_iter_as_int64(&it) : 0;
}

/* Where the previous sweep of coll stopped (-1: never swept), and in
 * *lookback when its last look-back pass ran (0: never). */
static int64_t swept_until(pwc_store *s, mongoc_database_t *db, const char *coll, int64_t *lookback,
                           char *err, size_t errlen, int *failed)
{
    char id[128];
    snprintf(id, sizeof(id), "retention|%s", coll);
    mongoc_collection_t *c = mongoc_database_get_collection(db, PW_COLL_PROGRESS);
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, PW_F_ID, id);
    pw_store_plan_check(s->plans, c, &filter, "retention mark", PW_QUERY_FILTERED);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, &filter, NULL, NULL);
    const bson_t *doc;
    int64_t until = -1;
    bson_iter_t it;
    *lookback = 0;
    if (mongoc_cursor_next(cur, &doc)) {
        if (bson_iter_init_find(&it, doc, PW_F_UNTIL)) {
            until = bson_iter_as_int64(&it);
        }
        if (bson_iter_init_find(&it, doc, PW_F_LOOKBACK)) {
            *lookback = bson_iter_as_int64(&it);
        }
    }
    bson_error_t e;
    if (mongoc_cursor_error(cur, &e)) {
        pwc_set_err(err, errlen, "retention mark", &e);
        *failed = 1;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    mongoc_collection_destroy(c);
    return until;
}

/* Raises the mark to until and, when lookback > 0, the time of the last
 * look-back pass to lookback. */
static int mark_swept(mongoc_database_t *db, const char *coll, int64_t until, int64_t lookback,
                      char *err, size_t errlen)
{
    char id[128];
    snprintf(id, sizeof(id), "retention|%s", coll);
    mongoc_collection_t *c = mongoc_database_get_collection(db, PW_COLL_PROGRESS);
    bson_t *sel = BCON_NEW(PW_F_ID, BCON_UTF8(id));
    bson_t *upd = lookback > 0 ? BCON_NEW("$max", "{", PW_F_UNTIL, BCON_INT64(until), PW_F_LOOKBACK,
                                          BCON_INT64(lookback), "}")
                               : BCON_NEW("$max", "{", PW_F_UNTIL, BCON_INT64(until), "}");
    bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
    bson_error_t e;
    int rc = mongoc_collection_update_one(c, sel, upd, opts, NULL, &e) ? 0 : -1;
    if (rc != 0) {
        pwc_set_err(err, errlen, "retention mark", &e);
    }
    bson_destroy(sel);
    bson_destroy(upd);
    bson_destroy(opts);
    mongoc_collection_destroy(c);
    return rc;
}

/* Deletes the documents of each hour in [from, to). The filter's plan is
 * checked even when no hour is due. */
static int64_t sweep_hours(pwc_store *s, mongoc_database_t *db, const sweep_target *t, int64_t from,
                           int64_t to, char *err, size_t errlen)
{
    mongoc_collection_t *c = mongoc_database_get_collection(db, t->coll);
    bson_t probe = BSON_INITIALIZER;
    BSON_APPEND_DATE_TIME(&probe, t->field, to);
    pw_store_plan_check(s->plans, c, &probe, "retention sweep", PW_QUERY_FILTERED);
    bson_destroy(&probe);
    int64_t deleted = 0;
    for (int64_t h = from; h < to && deleted >= 0; h += PWC_HOUR_MS) {
        bson_t sel = BSON_INITIALIZER, reply;
        bson_error_t e;
        BSON_APPEND_DATE_TIME(&sel, t->field, h);
        if (mongoc_collection_delete_many(c, &sel, NULL, &reply, &e)) {
            deleted += reply_count(&reply);
        } else {
            pwc_set_err(err, errlen, t->coll, &e);
            deleted = -1;
        }
        bson_destroy(&reply);
        bson_destroy(&sel);
    }
    mongoc_collection_destroy(c);
    return deleted;
}

static int64_t sweep_one(pwc_store *s, mongoc_database_t *db, const sweep_target *t, int64_t now_ms,
                         char *err, size_t errlen)
{
    int failed = 0;
    int64_t cutoff = pw_time_hour_start(now_ms - t->ttl_ms);
    int64_t lookback = 0;
    int64_t from = swept_until(s, db, t->coll, &lookback, err, errlen, &failed);
    if (failed) {
        return -1;
    }
    if (from < 0) {
        /* nothing was swept yet: the oldest a stored record can be is as old
         * as the oldest time the producer accepts, before the store began */
        from = pw_time_hour_start(cutoff - PW_MAX_PAST_MS);
    }
    int64_t pass = 0; /* this sweep's look-back pass, if one is due */
    if (now_ms - lookback >= PWC_LOOKBACK_EVERY_MS) {
        int64_t back = pw_time_hour_start(cutoff - PWC_LOOKBACK_MS);
        from = back < from ? back : from;
        pass = now_ms;
    }
    int64_t n = sweep_hours(s, db, t, from, cutoff, err, errlen);
    if (n >= 0 && from < cutoff && mark_swept(db, t->coll, cutoff, pass, err, errlen) != 0) {
        n = -1;
    }
    return n;
}

int64_t pwc_store_sweep(pwc_store *s, int64_t now_ms, long telemetry_ttl_s, long alerts_ttl_s,
                        char *err, size_t errlen)
{
    int64_t tel = telemetry_ttl_s * 1000LL, alr = alerts_ttl_s * 1000LL, day = 86400000LL;
    int64_t roll = (tel > alr ? tel : alr) + day;
    const sweep_target targets[] = {
        {PW_COLL_TELEMETRY, PW_F_HOUR, tel},
        {PW_COLL_ALERTS, PW_F_HOUR, alr},
        {PW_COLL_TOKENS, PW_F_AT, PWC_TOKEN_TTL_S * 1000LL},
        {PW_COLL_ROLLUP_READINGS, PW_F_START, tel + day},
        {PW_COLL_ROLLUP_ALERTS, PW_F_START, alr + day},
        {PW_COLL_SERIES_READINGS, PW_F_START, tel + day},
        {PW_COLL_DEVICE_DAY, PW_F_START, roll},
    };
    mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
    mongoc_database_t *db = mongoc_client_get_database(c, s->db);
    int64_t total = 0;
    for (size_t i = 0; i < sizeof(targets) / sizeof(*targets) && total >= 0; i++) {
        int64_t n = sweep_one(s, db, &targets[i], now_ms, err, errlen);
        total = n < 0 ? -1 : total + n;
    }
    mongoc_database_destroy(db);
    mongoc_client_pool_push(s->pool, c);
    return total;
}
