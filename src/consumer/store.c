/* store: the store object, the write path's order of steps, and the
 * dedupe step that decides which deliveries count (see store.h,
 * store_int.h and docs/architecture.md "Exactly-once storage"). */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dedupe.h"
#include "pw_log.h"
#include "pw_schema.h"
#include "pw_time.h"
#include "rollup.h"
#include "series.h"
#include "store_int.h"

/* Bucket states and device-day presence this process knows are stored. */
#define PWC_BUCKET_CACHE 4096
#define PWC_PRESENCE_CACHE 65536
/* Series states (at least a write round of series.c) and zone admissions
 * (more than the largest batch's readings, so one batch's always fit). */
#define PWC_SERIES_CACHE 4096
#define PWC_SERIES_ZONES_CACHE 16384

static void drop_state(void *v)
{
    pwc_rollup_state_free(v);
}

static void drop_zones(void *v)
{
    pwc_series_zones_free(v);
}

pwc_store *pwc_store_new(const char *db, const char *app_name, int explain, pwc_store_fault fault,
                         char *err, size_t errlen)
{
    pw_store_log_to_json();
    mongoc_init();
    pwc_store *s = calloc(1, sizeof(*s));
    if (!s) {
        return NULL;
    }
    s->uri = pw_store_uri_from_env(2000, 30000, err, errlen);
    if (!s->uri) {
        free(s);
        return NULL;
    }
    mongoc_uri_set_option_as_bool(s->uri, MONGOC_URI_RETRYWRITES, false);
    s->pool = mongoc_client_pool_new(s->uri);
    s->db = strdup(db);
    s->plans = pw_store_plans_new(explain);
    s->fault = fault;
    s->buckets = pwc_cache_new(PWC_BUCKET_CACHE, sizeof(pwc_rollup_state), drop_state);
    s->presence = pwc_cache_new(PWC_PRESENCE_CACHE, 1, NULL);
    s->series = pwc_cache_new(PWC_SERIES_CACHE, sizeof(pwc_series_state), NULL);
    s->series_zones = pwc_cache_new(PWC_SERIES_ZONES_CACHE, sizeof(pwc_series_zones), drop_zones);
    if (!s->pool || !s->db || !s->plans || !s->buckets || !s->presence || !s->series ||
        !s->series_zones) {
        snprintf(err, errlen, "cannot create the MongoDB client pool");
        pwc_store_free(s);
        return NULL;
    }
    mongoc_client_pool_set_error_api(s->pool, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_pool_set_appname(s->pool, app_name);
    return s;
}

void pwc_store_free(pwc_store *s)
{
    if (!s) {
        return;
    }
    if (s->pool) {
        mongoc_client_pool_destroy(s->pool);
    }
    mongoc_uri_destroy(s->uri);
    free(s->db);
    pwc_cache_free(s->buckets);
    pwc_cache_free(s->presence);
    pwc_cache_free(s->series);
    pwc_cache_free(s->series_zones);
    pwc_census_forget(s);
    pw_store_plans_free(s->plans);
    free(s);
}

void pwc_store_refuse_device(pwc_store *s, const char *device, int raw_only)
{
    snprintf(s->refuse_device, sizeof(s->refuse_device), "%s", device ? device : "");
    s->refuse_raw_only = raw_only;
}

void pwc_store_forget_buckets(pwc_store *s)
{
    pwc_cache_clear(s->buckets);
    pwc_census_forget(s);
    pwc_series_forget(s);
}

int pwc_store_is_ferretdb(const pwc_store *s)
{
    return s->ferretdb;
}

int pwc_store_ping(pwc_store *s)
{
    mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
    bson_t cmd = BSON_INITIALIZER;
    BSON_APPEND_INT32(&cmd, "ping", 1);
    bson_error_t e;
    bool ok = mongoc_client_command_simple(c, "admin", &cmd, NULL, NULL, &e);
    bson_destroy(&cmd);
    mongoc_client_pool_push(s->pool, c);
    return ok ? 1 : 0;
}

/* ---- dedupe: which deliveries contribute to rollups ---------------------- */

static int64_t settled_of(void *ctx, const char *topic, int32_t partition)
{
    return pwc_progress_get(ctx, topic, partition)->settled;
}

typedef struct {
    pwc_entry *entries;
    const size_t *idx;
    size_t n;
    int *own;
} origin_ctx;

static void origin_seen(void *vctx, const char *token, const bson_t *doc)
{
    origin_ctx *c = vctx;
    const char *origin = pw_store_str(doc, PW_F_ORIGIN);
    for (size_t i = 0; i < c->n; i++) {
        const pwc_entry *e = &c->entries[c->idx[i]];
        if (strcmp(e->rec->token, token) == 0 && pwc_dedupe_is_own(e, origin)) {
            c->own[i] = 1;
        }
    }
}

/* Uncertain duplicates of one kind: contribute when their gate's stored
 * origin is their own position; own readings get a missing raw document. */
static int resolve_kind(pwc_store *s, mongoc_database_t *db, pwc_entry *entries,
                        const size_t *uncertain, size_t nu, pwc_kind kind, char *err, size_t errlen)
{
    size_t *sel = malloc((nu ? nu : 1) * sizeof(size_t));
    const char **ids = malloc((nu ? nu : 1) * sizeof(char *));
    int *own = calloc(nu ? nu : 1, sizeof(int));
    int rc = sel && ids && own ? 0 : -1;
    size_t m = 0;
    for (size_t i = 0; rc == 0 && i < nu; i++) {
        if (entries[uncertain[i]].rec->kind == kind) {
            sel[m] = uncertain[i];
            ids[m++] = entries[uncertain[i]].rec->token;
        }
    }
    origin_ctx c = {entries, sel, m, own};
    const char *gate = kind == PWC_ALERT ? PW_COLL_ALERTS : PW_COLL_TOKENS;
    if (rc == 0) {
        rc = pwc_find_ids(s, db, gate, ids, m, PW_F_ORIGIN, origin_seen, &c, "gate origin", err,
                          errlen);
    }
    size_t nown = 0;
    for (size_t i = 0; rc == 0 && i < m; i++) {
        if (own[i]) {
            entries[sel[i]].contributes = 1;
            sel[nown++] = sel[i];
        }
    }
    if (rc == 0 && kind == PWC_READING) {
        rc = pwc_raw_restore(s, db, entries, sel, nown, err, errlen);
    }
    free(sel);
    free(ids);
    free(own);
    return rc;
}

int pwc_decide_contributions(pwc_store *s, mongoc_database_t *db, pwc_entry *entries, size_t n,
                             const int *gate, pwc_progress_set *prog, char *err, size_t errlen)
{
    int any_dup = 0;
    for (size_t i = 0; i < n; i++) {
        any_dup |= gate[i] == PWC_GATE_DUP;
        entries[i].contributes = gate[i] == PWC_GATE_NEW;
    }
    if (!any_dup) {
        return 0;
    }
    if (pwc_progress_read(s, db, prog, err, errlen) != 0) {
        return -1;
    }
    size_t *uncertain = malloc(n * sizeof(size_t));
    if (!uncertain) {
        return -1;
    }
    size_t nu = pwc_dedupe_gate(entries, n, gate, settled_of, prog, uncertain);
    int rc = resolve_kind(s, db, entries, uncertain, nu, PWC_ALERT, err, errlen);
    if (rc == 0) {
        rc = resolve_kind(s, db, entries, uncertain, nu, PWC_READING, err, errlen);
    }
    free(uncertain);
    return rc;
}

/* ---- discarding a refused record ------------------------------------------ */

/* Deletes {_id: token, origin: <e's position>} from coll: 1 deleted, 0 not
 * there (or another delivery's), -1 with err. */
static int delete_own(pwc_store *s, mongoc_database_t *db, const char *coll_name,
                      const pwc_entry *e, int with_origin, char *err, size_t errlen)
{
    char origin[PWC_ORIGIN_LEN + 24];
    pwc_origin_format(e->topic, e->partition, e->offset, origin, sizeof(origin));
    mongoc_collection_t *coll = mongoc_database_get_collection(db, coll_name);
    bson_t filter = BSON_INITIALIZER, reply;
    BSON_APPEND_UTF8(&filter, PW_F_ID, e->rec->token);
    if (with_origin) {
        BSON_APPEND_UTF8(&filter, PW_F_ORIGIN, origin);
    }
    pw_store_plan_check(s->plans, coll, &filter, "refused record discard", PW_QUERY_FILTERED);
    bson_error_t be;
    int rc = -1;
    if (mongoc_collection_delete_one(coll, &filter, NULL, &reply, &be)) {
        bson_iter_t it;
        rc = bson_iter_init_find(&it, &reply, "deletedCount") && bson_iter_as_int64(&it) > 0;
    } else {
        pwc_set_err(err, errlen, "refused record discard", &be);
    }
    bson_destroy(&reply);
    bson_destroy(&filter);
    mongoc_collection_destroy(coll);
    return rc;
}

int pwc_store_discard(pwc_store *s, const pwc_entry *e, char *err, size_t errlen)
{
    mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
    mongoc_database_t *db = mongoc_client_get_database(c, s->db);
    int reading = e->rec->kind == PWC_READING;
    int rc = delete_own(s, db, reading ? PW_COLL_TOKENS : PW_COLL_ALERTS, e, 1, err, errlen);
    if (rc == 1 && reading) {
        rc = delete_own(s, db, PW_COLL_TELEMETRY, e, 0, err, errlen);
    }
    mongoc_database_destroy(db);
    mongoc_client_pool_push(s->pool, c);
    return rc < 0 ? -1 : 0;
}

/* ---- the write path --------------------------------------------------------- */

typedef struct {
    int64_t t[9];
    int k;
} step_timer;

static void step(step_timer *st)
{
    st->t[st->k++] = pw_monotonic_us();
}

static void log_timing(const step_timer *st, size_t n)
{
    const int64_t *t = st->t;
    pw_log_fields(PW_LOG_DEBUG, "store_timing",
                  json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "n", (json_int_t)n, "raw_us",
                            (json_int_t)(t[1] - t[0]), "dedupe_us", (json_int_t)(t[2] - t[1]),
                            "presence_us", (json_int_t)(t[3] - t[2]), "rollups_us",
                            (json_int_t)(t[4] - t[3]), "series_us", (json_int_t)(t[5] - t[4]),
                            "census_us", (json_int_t)(t[6] - t[5]), "progress_us",
                            (json_int_t)(t[7] - t[6])),
                  "batch written");
}

/* Raw and gate inserts, contributions, presence, rollups, minute series, census,
 * progress. */
static int write_steps(pwc_store *s, mongoc_database_t *db, pwc_entry *entries, size_t n, int *gate,
                       pwc_progress_set *prog, char *err, size_t errlen)
{
    step_timer st = {{0}, 0};
    step(&st);
    int rc = pwc_raw_insert(s, db, entries, n, gate, err, errlen);
    step(&st);
    if (rc == 0) {
        rc = pwc_decide_contributions(s, db, entries, n, gate, prog, err, errlen);
    }
    step(&st);
    if (rc == 0) {
        rc = pwc_presence_write(s, db, entries, n, prog, err, errlen);
    }
    step(&st);
    for (int k = 0; rc == 0 && k < PWC_ROLLUP_KINDS; k++) {
        rc = pwc_rollups_write(s, db, k, entries, n, err, errlen);
    }
    step(&st);
    if (rc == 0) {
        rc = pwc_series_write(s, db, entries, n, err, errlen);
    }
    step(&st);
    if (rc == 0) {
        rc = pwc_census_write(s, db, entries, n, err, errlen);
    }
    step(&st);
    if (rc == 0) {
        rc = pwc_progress_note(s, db, prog, 0, err, errlen);
    }
    if (rc == 0) {
        pwc_presence_remember(s, entries, n);
    }
    step(&st);
    if (rc == 0 && pw_log_enabled(PW_LOG_DEBUG)) {
        log_timing(&st, n);
    }
    return rc;
}

int pwc_store_write(pwc_store *s, pwc_entry *entries, size_t n, pwc_write_result *res, char *err,
                    size_t errlen)
{
    memset(res, 0, sizeof(*res));
    if (n == 0) {
        return 0;
    }
    int *gate = calloc(n, sizeof(int));
    pwc_progress_set prog = {calloc(n, sizeof(pwc_tp_progress)), 0, 0};
    if (!gate || !prog.items) {
        free(gate);
        free(prog.items);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        entries[i].new_device = 0;
        pwc_tp_progress *t = pwc_progress_get(&prog, entries[i].topic, entries[i].partition);
        if (entries[i].offset > t->max_off) {
            t->max_off = entries[i].offset;
        }
    }
    mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
    mongoc_database_t *db = mongoc_client_get_database(c, s->db);
    s->res = res;
    s->refused = 0;
    err[0] = '\0';
    int rc = write_steps(s, db, entries, n, gate, &prog, err, errlen);
    s->res = NULL;
    res->refused = rc != 0 && s->refused;
    if (res->refused) {
        snprintf(err, errlen, "refused by the store: %s", s->refused_msg);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (gate[i] == PWC_GATE_DUP) {
            res->duplicates++;
        } else if (entries[i].rec->kind == PWC_READING) {
            res->stored_readings++;
        } else {
            res->stored_alerts++;
        }
    }
    mongoc_database_destroy(db);
    mongoc_client_pool_push(s->pool, c);
    free(gate);
    free(prog.items);
    return rc;
}

int pwc_store_flush_progress(pwc_store *s, char *err, size_t errlen)
{
    pwc_progress_set none = {NULL, 0, 0};
    mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
    mongoc_database_t *db = mongoc_client_get_database(c, s->db);
    int rc = pwc_progress_note(s, db, &none, 1, err, errlen);
    mongoc_database_destroy(db);
    mongoc_client_pool_push(s->pool, c);
    return rc;
}
