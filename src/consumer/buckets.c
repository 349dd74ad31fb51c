/* buckets: the guarded writes of pre-aggregated documents — rollup buckets
 * (hour and day) and the device census. Each document's state is known in
 * memory after it was read (once, by _id) or written; a batch folds into it
 * and the document is written whole: inserted when the store does not hold
 * it, else updated under the guard {_id, _v: stored _v}. A write that does
 * not land lost a race to another writer (a consumer that took over the
 * partition, or one that lost it): the states of that command are forgotten,
 * read again and the batch folded again, so nothing is counted twice and no
 * state is rolled back (see store_int.h, docs/architecture.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dedupe.h"
#include "pw_log.h"
#include "pw_schema.h"
#include "pw_time.h"
#include "rollup.h"
#include "store_int.h"

#define PWC_GUARD_ATTEMPTS 4

int pwc_guarded_take(pwc_guarded_item *it, bson_t *tmp)
{
    it->doc = bson_copy(tmp);
    bson_destroy(tmp);
    return it->doc ? 0 : -1;
}

static int guarded_updates(pwc_store *s, mongoc_collection_t *coll, pwc_guarded_item *items,
                           size_t n, pwc_bulk_result *total, size_t *expected, char *err,
                           size_t errlen)
{
    pwc_update_batch ub;
    pwc_ub_init(&ub, coll, err, errlen);
    *expected = 0;
    for (size_t i = 0; i < n; i++) {
        if (!items[i].stored) {
            continue;
        }
        bson_t sel = BSON_INITIALIZER, upd = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&sel, PW_F_ID, items[i].id);
        BSON_APPEND_INT64(&sel, PW_F_VERSION, items[i].guard);
        pw_store_plan_check(s->plans, coll, &sel, "guarded update", PW_QUERY_FILTERED);
        BSON_APPEND_DOCUMENT(&upd, "$set", items[i].doc);
        mongoc_bulk_operation_update_one_with_opts(pwc_ub_next(&ub), &sel, &upd, NULL, NULL);
        bson_destroy(&sel);
        bson_destroy(&upd);
        (*expected)++;
    }
    int rc = pwc_ub_finish(&ub);
    *total = ub.total;
    return rc;
}

static int guarded_inserts(mongoc_collection_t *coll, pwc_guarded_item *items, size_t n,
                           pwc_bulk_result *r, size_t *dups, char *err, size_t errlen)
{
    size_t m = 0;
    mongoc_bulk_operation_t *bulk = pwc_bulk_new(coll);
    for (size_t i = 0; i < n; i++) {
        if (!items[i].stored) {
            mongoc_bulk_operation_insert_with_opts(bulk, items[i].doc, NULL, NULL);
            m++;
        }
    }
    *dups = 0;
    if (m == 0) {
        mongoc_bulk_operation_destroy(bulk);
        return 0;
    }
    r->dup = calloc(m, sizeof(int));
    int rc = r->dup ? pwc_bulk_exec(bulk, r, m, err, errlen) : -1;
    if (!r->dup) {
        mongoc_bulk_operation_destroy(bulk);
    }
    for (size_t i = 0; rc == 0 && i < m; i++) {
        *dups += r->dup[i] ? 1 : 0;
    }
    free(r->dup);
    r->dup = NULL;
    return rc;
}

pwc_guard_outcome pwc_guarded_write(pwc_store *s, mongoc_database_t *db, const char *coll_name,
                                    pwc_guarded_item *items, size_t n, char *err, size_t errlen)
{
    if (n == 0) {
        return PWC_GUARD_LANDED;
    }
    mongoc_collection_t *coll = mongoc_database_get_collection(db, coll_name);
    pwc_bulk_result upd = {0}, ins = {0};
    size_t expected = 0, dups = 0;
    int urc = guarded_updates(s, coll, items, n, &upd, &expected, err, errlen);
    int irc = urc == 0 ? guarded_inserts(coll, items, n, &ins, &dups, err, errlen) : 0;
    mongoc_collection_destroy(coll);
    pwc_note_refusal(s, &upd);
    pwc_note_refusal(s, &ins);
    int failed = urc != 0 || irc != 0 || upd.other_error || ins.other_error;
    if (failed && !upd.conflict && !ins.conflict && err[0] == '\0') {
        snprintf(err, errlen, "%s: write error", coll_name);
    }
    pwc_guard_outcome o =
        pwc_guard_outcome_of(expected, upd.n_matched, dups, upd.conflict || ins.conflict, failed);
    if (o == PWC_GUARD_LOST) {
        pw_log(PW_LOG_INFO, "write_conflict",
               "%s: a guarded write lost a race (%lld of %zu updates matched, %zu inserts "
               "existed); reading again",
               coll_name, (long long)upd.n_matched, expected, dups);
    }
    return o;
}

void pwc_guarded_free(pwc_guarded_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bson_destroy(items[i].doc);
    }
    free(items);
}

/* ---- rollup buckets ----------------------------------------------------------- */

static void bucket_cache_key(pwc_rollup_kind k, const char *id, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", pwc_rollup_collection(k), id);
}

typedef struct {
    pwc_store *s;
    pwc_rollup_kind kind;
    int failed;
} bucket_ctx;

static void bucket_loaded(void *vctx, const char *id, const bson_t *doc)
{
    bucket_ctx *c = vctx;
    char key[PWC_ROLLUP_KEY_LEN + 32];
    pwc_rollup_state st;
    bucket_cache_key(c->kind, id, key, sizeof(key));
    if (pwc_rollup_state_from_doc(c->kind, doc, &st) != 0) {
        c->failed = 1;
        return;
    }
    if (pwc_cache_put(c->s->buckets, key, &st) != 0) {
        pwc_rollup_state_free(&st);
        c->failed = 1;
    }
}

/* Makes sure every group's bucket state is in the cache: reads the unknown
 * ones by _id; a bucket the store does not have starts empty. */
static int buckets_load(pwc_store *s, mongoc_database_t *db, pwc_rollup_kind k,
                        const pwc_rollup_groups *g, char *err, size_t errlen)
{
    const char **ids = malloc((g->n ? g->n : 1) * sizeof(char *));
    if (!ids) {
        return -1;
    }
    char key[PWC_ROLLUP_KEY_LEN + 32];
    size_t m = 0;
    for (size_t i = 0; i < g->n; i++) {
        bucket_cache_key(k, g->items[i].key, key, sizeof(key));
        if (!pwc_cache_get(s->buckets, key)) {
            ids[m++] = g->items[i].key;
        }
    }
    s->res->bucket_reads += m;
    bucket_ctx ctx = {s, k, 0};
    int rc = pwc_find_ids(s, db, pwc_rollup_collection(k), ids, m, NULL, bucket_loaded, &ctx,
                          "bucket read", err, errlen);
    if (rc == 0 && ctx.failed) {
        snprintf(err, errlen, "%s: a bucket state could not be read", pwc_rollup_collection(k));
        rc = -1;
    }
    for (size_t i = 0; i < m; i++) {
        bucket_cache_key(k, ids[i], key, sizeof(key));
        pwc_rollup_state empty;
        pwc_rollup_state_init(&empty);
        if (rc != 0) {
            pwc_cache_remove(s->buckets, key);
        } else if (!pwc_cache_get(s->buckets, key) && pwc_cache_put(s->buckets, key, &empty) != 0) {
            rc = -1;
        }
    }
    free(ids);
    return rc;
}

/* Folds each group into its bucket and adds the changed ones to items. */
static int buckets_fold(pwc_store *s, pwc_rollup_kind k, pwc_rollup_res res,
                        const pwc_rollup_groups *g, const pwc_entry *entries,
                        pwc_guarded_item *items, size_t *nitems, char *err, size_t errlen)
{
    char key[PWC_ROLLUP_KEY_LEN + 32];
    for (size_t i = 0; i < g->n; i++) {
        bucket_cache_key(k, g->items[i].key, key, sizeof(key));
        pwc_rollup_state *st = pwc_cache_get(s->buckets, key);
        long counted = st ? pwc_rollup_fold(k, st, &g->items[i], entries) : -1;
        if (counted == 0) {
            continue;
        }
        pwc_guarded_item *it = &items[*nitems];
        bson_t tmp;
        if (counted < 0 ||
            pwc_rollup_doc(k, res, &g->items[i], entries, st, st->stored, &tmp) != 0 ||
            pwc_guarded_take(it, &tmp) != 0) {
            snprintf(err, errlen, "%s: out of memory", pwc_rollup_collection(k));
            return -1;
        }
        it->id = g->items[i].key;
        it->stored = st->stored;
        it->guard = st->stored_v;
        (*nitems)++;
    }
    return 0;
}

/* After the write: landed states are stored at their hw; the others are
 * forgotten (read again). */
static void buckets_settle(pwc_store *s, pwc_rollup_kind k, const pwc_guarded_item *items, size_t n,
                           int landed)
{
    char key[PWC_ROLLUP_KEY_LEN + 32];
    for (size_t i = 0; i < n; i++) {
        bucket_cache_key(k, items[i].id, key, sizeof(key));
        pwc_rollup_state *st = pwc_cache_get(s->buckets, key);
        if (landed && st) {
            st->stored_v = pwc_rollup_next_version(st);
            st->stored = 1;
            s->res->overflow[k][items[i].id[0] == 'h' ? PWC_RES_HOUR : PWC_RES_DAY] +=
                (size_t)st->overflowed;
            st->overflowed = 0;
        } else {
            pwc_cache_remove(s->buckets, key);
        }
    }
}

static pwc_guard_outcome rollups_attempt(pwc_store *s, mongoc_database_t *db, pwc_rollup_kind k,
                                         pwc_rollup_groups g[PWC_ROLLUP_RESOLUTIONS],
                                         const pwc_entry *entries, char *err, size_t errlen)
{
    size_t total = g[0].n + g[1].n, nitems = 0;
    pwc_cache_reserve(s->buckets, total);
    for (int r = 0; r < PWC_ROLLUP_RESOLUTIONS; r++) {
        if (buckets_load(s, db, k, &g[r], err, errlen) != 0) {
            return PWC_GUARD_FAILED;
        }
    }
    pwc_guarded_item *items = calloc(total ? total : 1, sizeof(*items));
    if (!items) {
        return PWC_GUARD_FAILED;
    }
    int rc = 0;
    for (int r = 0; rc == 0 && r < PWC_ROLLUP_RESOLUTIONS; r++) {
        rc = buckets_fold(s, k, (pwc_rollup_res)r, &g[r], entries, items, &nitems, err, errlen);
    }
    pwc_guard_outcome o =
        rc == 0 ? pwc_guarded_write(s, db, pwc_rollup_collection(k), items, nitems, err, errlen)
                : PWC_GUARD_FAILED;
    buckets_settle(s, k, items, nitems, o == PWC_GUARD_LANDED);
    if (rc != 0) {
        /* states folded before the failure are ahead of the store */
        pwc_cache_clear(s->buckets);
    }
    pwc_guarded_free(items, nitems);
    return o;
}

int pwc_rollups_write(pwc_store *s, mongoc_database_t *db, int kind, const pwc_entry *entries,
                      size_t n, char *err, size_t errlen)
{
    pwc_rollup_kind k = (pwc_rollup_kind)kind;
    pwc_rollup_groups g[PWC_ROLLUP_RESOLUTIONS];
    memset(g, 0, sizeof(g));
    int rc = 0;
    for (int r = 0; rc == 0 && r < PWC_ROLLUP_RESOLUTIONS; r++) {
        rc = pwc_rollup_group_entries(k, (pwc_rollup_res)r, entries, n, &g[r]);
    }
    pwc_guard_outcome o = rc == 0 ? PWC_GUARD_LOST : PWC_GUARD_FAILED;
    for (int attempt = 0; o == PWC_GUARD_LOST && attempt < PWC_GUARD_ATTEMPTS; attempt++) {
        if (attempt > 0) {
            s->res->conflicts++;
        }
        o = rollups_attempt(s, db, k, g, entries, err, errlen);
    }
    if (o == PWC_GUARD_LOST) {
        s->res->conflicts++;
        snprintf(err, errlen, "%s: guarded writes kept losing races", pwc_rollup_collection(k));
    }
    for (int r = 0; r < PWC_ROLLUP_RESOLUTIONS; r++) {
        pwc_rollup_groups_free(&g[r]);
    }
    return o == PWC_GUARD_LANDED ? 0 : -1;
}

/* ---- device census ----------------------------------------------------------------- */

void pwc_census_forget(pwc_store *s)
{
    for (size_t i = 0; i < s->ncensus; i++) {
        pwc_census_free(s->census[i]);
        free(s->census[i]);
    }
    s->ncensus = 0;
}

static void census_drop(pwc_store *s, const char *key)
{
    for (size_t i = 0; i < s->ncensus; i++) {
        if (strcmp(s->census[i]->key, key) == 0) {
            pwc_census_free(s->census[i]);
            free(s->census[i]);
            s->census[i] = s->census[--s->ncensus];
            return;
        }
    }
}

typedef struct {
    pwc_census *c;
    int failed;
} census_ctx;

static void census_loaded(void *vctx, const char *id, const bson_t *doc)
{
    (void)id;
    census_ctx *c = vctx;
    if (pwc_census_from_doc(c->c, doc) != 0) {
        c->failed = 1;
    }
}

/* The state of e's (partition, shard), read by _id when unknown. */
static pwc_census *census_get(pwc_store *s, mongoc_database_t *db, const pwc_entry *e, char *err,
                              size_t errlen)
{
    char key[PWC_CENSUS_KEY_LEN];
    int shard = pwc_census_shard(e->rec->device);
    pwc_census_key(e->topic, e->partition, shard, key, sizeof(key));
    for (size_t i = 0; i < s->ncensus; i++) {
        if (strcmp(s->census[i]->key, key) == 0) {
            return s->census[i];
        }
    }
    if (s->ncensus == PWC_CENSUS_STATES) {
        pwc_census_forget(s);
    }
    pwc_census *c = calloc(1, sizeof(*c));
    if (!c || pwc_census_init(c, e->topic, e->partition, shard) != 0) {
        free(c);
        return NULL;
    }
    census_ctx ctx = {c, 0};
    const char *ids[] = {c->key};
    s->res->bucket_reads++;
    if (pwc_find_ids(s, db, PW_COLL_CENSUS, ids, 1, NULL, census_loaded, &ctx, "census read", err,
                     errlen) != 0 ||
        ctx.failed) {
        if (ctx.failed) {
            snprintf(err, errlen, "%s %s: the state could not be read", PW_COLL_CENSUS, c->key);
        }
        pwc_census_free(c);
        free(c);
        return NULL;
    }
    s->census[s->ncensus++] = c;
    return c;
}

static pwc_guard_outcome census_attempt(pwc_store *s, mongoc_database_t *db,
                                        const pwc_entry *entries, size_t n, char *err,
                                        size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        pwc_census *c = census_get(s, db, &entries[i], err, errlen);
        if (!c || pwc_census_fold(c, &entries[i]) != 0) {
            pwc_census_forget(s);
            return PWC_GUARD_FAILED;
        }
    }
    for (size_t q = 0; q < s->ncensus; q++) {
        s->res->census_overflow += (size_t)s->census[q]->overflowed;
        s->census[q]->overflowed = 0;
    }
    /* every known shard whose write is due, also one this batch did not
     * touch whose time moves waited for the resolution */
    int64_t now_us = pw_monotonic_us();
    pwc_census *touched[PWC_CENSUS_STATES];
    size_t nt = 0;
    for (size_t q = 0; q < s->ncensus; q++) {
        if (pwc_census_write_due(s->census[q], now_us)) {
            touched[nt++] = s->census[q];
        }
    }
    pwc_guarded_item *items = calloc(nt ? nt : 1, sizeof(*items));
    if (!items) {
        pwc_census_forget(s);
        return PWC_GUARD_FAILED;
    }
    size_t m = 0;
    for (size_t q = 0; q < nt; q++, m++) {
        items[m].id = touched[q]->key;
        items[m].stored = touched[q]->stored;
        items[m].guard = touched[q]->stored_v;
        bson_t tmp;
        if (pwc_census_doc(touched[q], touched[q]->stored, &tmp) != 0 ||
            pwc_guarded_take(&items[m], &tmp) != 0) {
            pwc_guarded_free(items, m);
            pwc_census_forget(s);
            return PWC_GUARD_FAILED;
        }
    }
    pwc_guard_outcome o = pwc_guarded_write(s, db, PW_COLL_CENSUS, items, m, err, errlen);
    for (size_t q = 0; q < nt; q++) {
        if (o == PWC_GUARD_LANDED) {
            pwc_census_mark_written(touched[q], now_us);
        } else {
            census_drop(s, touched[q]->key);
        }
    }
    pwc_guarded_free(items, m);
    return o;
}

int pwc_census_write(pwc_store *s, mongoc_database_t *db, const pwc_entry *entries, size_t n,
                     char *err, size_t errlen)
{
    pwc_guard_outcome o = PWC_GUARD_LOST;
    for (int attempt = 0; o == PWC_GUARD_LOST && attempt < PWC_GUARD_ATTEMPTS; attempt++) {
        if (attempt > 0) {
            s->res->conflicts++;
        }
        o = census_attempt(s, db, entries, n, err, errlen);
    }
    if (o == PWC_GUARD_LOST) {
        s->res->conflicts++;
        snprintf(err, errlen, "%s: guarded writes kept losing races", PW_COLL_CENSUS);
    }
    return o == PWC_GUARD_LANDED ? 0 : -1;
}
