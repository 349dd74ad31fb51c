/* store: MongoDB/FerretDB persistence of consumed batches (see store.h and
 * docs/architecture.md "Exactly-once storage"). */
#include "store.h"

#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pw_log.h"
#include "pw_time.h"
#include "cache.h"
#include "rollup.h"

#define PWC_E_DUPLICATE 11000
#define PWC_E_NS_EXISTS 48
#define PWC_TOKEN_TTL_S (8L * 86400) /* outlives Kafka retention (7 d) */

/* What this process knows the devices collection holds for a device (read on
 * a miss, updated after each write). Lets a batch skip the devices write when
 * it would change nothing but move first_seen or last_seen by less than
 * PWC_DEVICE_REFRESH_MS (their resolution), and decides whether zone/firmware
 * follow the batch (only when its newest record is at least as new as the
 * stored last_seen). */
#define PWC_DEVICE_CACHE 16384
#define PWC_DEVICE_REFRESH_MS 10000
/* Bucket states and device-day presence this process knows are stored. */
#define PWC_BUCKET_CACHE 4096
#define PWC_PRESENCE_CACHE 65536

typedef struct {
    char device[PW_MAX_ID_LEN + 1];
    char zone[PW_MAX_ZONE_LEN + 1];
    char firmware[PW_MAX_FIRMWARE_LEN + 1];
    int64_t first, last;
} device_seen;

/* Settled offsets not yet written to consumer_progress (see progress_note). */
#define PWC_PENDING_TP 64
#define PWC_PROGRESS_EVERY_US 1000000

/* One partition's marks in consumer_progress. */
typedef struct {
    char tp[PWC_ORIGIN_LEN];
    int64_t settled; /* -1 unknown */
    int64_t max_off;
} tp_progress;

struct pwc_store {
    /* touched by the write path (consume thread) only */
    tp_progress pending[PWC_PENDING_TP]; /* max_off of completely written batches */
    size_t npending;
    int64_t progress_written_us;
    device_seen *devices; /* PWC_DEVICE_CACHE slots */
    pwc_cache *buckets;   /* rollup _id -> pwc_rollup_state of an owned partition */
    pwc_cache *presence;  /* rollup_device_day _id -> (nothing) */
    mongoc_client_pool_t *pool;
    mongoc_uri_t *uri;
    char *db;
    int ferretdb;
};

enum { RAW_NEW = 1, RAW_DUP = 2 };

static void drop_state(void *v);

static void set_err(char *err, size_t errlen, const char *what, const bson_error_t *e)
{
    snprintf(err, errlen, "%s: %s", what, e ? e->message : "failed");
}

/* mongoc's own log lines become JSON log lines (it talks to stderr otherwise). */
static void mongoc_to_pw_log(mongoc_log_level_t level, const char *domain, const char *message,
                             void *data)
{
    (void)data;
    pw_log_level l = level <= MONGOC_LOG_LEVEL_CRITICAL  ? PW_LOG_ERROR
                     : level == MONGOC_LOG_LEVEL_WARNING ? PW_LOG_WARN
                     : level <= MONGOC_LOG_LEVEL_INFO    ? PW_LOG_INFO
                                                         : PW_LOG_DEBUG;
    if (strstr(message, "endSessions")) /* FerretDB 1.x has no sessions: noise */
        l = PW_LOG_DEBUG;
    if (pw_log_enabled(l))
        pw_log(l, "mongoc", "%s: %s", domain, message);
}

pwc_store *pwc_store_new(const char *uri, const char *db, const char *app_name, char *err,
                         size_t errlen)
{
    bson_error_t e;
    mongoc_init();
    mongoc_log_set_handler(mongoc_to_pw_log, NULL);
    pwc_store *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->uri = mongoc_uri_new_with_error(uri, &e);
    if (!s->uri) {
        set_err(err, errlen, "PW_MONGO_URI", &e);
        free(s);
        return NULL;
    }
    if (!mongoc_uri_has_option(s->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
        mongoc_uri_set_option_as_int32(s->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 2000);
    if (!mongoc_uri_has_option(s->uri, MONGOC_URI_SOCKETTIMEOUTMS))
        mongoc_uri_set_option_as_int32(s->uri, MONGOC_URI_SOCKETTIMEOUTMS, 30000);
    if (!mongoc_uri_has_option(s->uri, MONGOC_URI_CONNECTTIMEOUTMS))
        mongoc_uri_set_option_as_int32(s->uri, MONGOC_URI_CONNECTTIMEOUTMS, 2000);
    mongoc_uri_set_option_as_bool(s->uri, MONGOC_URI_RETRYWRITES, false);
    s->pool = mongoc_client_pool_new(s->uri);
    s->db = strdup(db);
    s->devices = calloc(PWC_DEVICE_CACHE, sizeof(device_seen));
    s->buckets = pwc_cache_new(PWC_BUCKET_CACHE, sizeof(pwc_rollup_state), drop_state);
    s->presence = pwc_cache_new(PWC_PRESENCE_CACHE, 1, NULL);
    if (!s->pool || !s->db || !s->devices || !s->buckets || !s->presence) {
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
    if (!s)
        return;
    if (s->pool)
        mongoc_client_pool_destroy(s->pool);
    mongoc_uri_destroy(s->uri);
    free(s->db);
    free(s->devices);
    pwc_cache_free(s->buckets);
    pwc_cache_free(s->presence);
    free(s);
}

void pwc_store_forget_buckets(pwc_store *s)
{
    pwc_cache_clear(s->buckets);
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

/* ---- layout ---------------------------------------------------------- */

static int run_cmd(mongoc_database_t *db, bson_t *cmd, int ok_code, char *err, size_t errlen,
                   const char *what)
{
    bson_error_t e;
    bson_t reply;
    bool ok = mongoc_database_command_simple(db, cmd, NULL, &reply, &e);
    bson_destroy(&reply);
    bson_destroy(cmd);
    if (ok || (ok_code && (int)e.code == ok_code))
        return 0;
    set_err(err, errlen, what, &e);
    return -1;
}

static int create_collection(mongoc_database_t *db, const char *name, const bson_t *extra,
                             char *err, size_t errlen)
{
    bson_t *cmd = bson_new();
    BSON_APPEND_UTF8(cmd, "create", name);
    if (extra)
        bson_concat(cmd, extra);
    return run_cmd(db, cmd, PWC_E_NS_EXISTS, err, errlen, name);
}

/* keys: "ts" or "device,ts" (ascending). ttl_s > 0 makes it a TTL index. */
static int create_index(mongoc_database_t *db, const char *coll, const char *keys, long ttl_s,
                        char *err, size_t errlen)
{
    bson_t *cmd = bson_new(), arr, ix, key;
    char name[128] = "", buf[128];
    snprintf(buf, sizeof(buf), "%s", keys);
    BSON_APPEND_UTF8(cmd, "createIndexes", coll);
    BSON_APPEND_ARRAY_BEGIN(cmd, "indexes", &arr);
    BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &ix);
    BSON_APPEND_DOCUMENT_BEGIN(&ix, "key", &key);
    for (char *save = NULL, *f = strtok_r(buf, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
        BSON_APPEND_INT32(&key, f, 1);
        size_t l = strlen(name);
        snprintf(name + l, sizeof(name) - l, "%s%s_1", l ? "_" : "", f);
    }
    bson_append_document_end(&ix, &key);
    BSON_APPEND_UTF8(&ix, "name", name);
    if (ttl_s > 0)
        BSON_APPEND_INT64(&ix, "expireAfterSeconds", ttl_s);
    bson_append_document_end(&arr, &ix);
    bson_append_array_end(cmd, &arr);
    char why[768] = "";
    if (run_cmd(db, cmd, 0, why, sizeof(why), coll) != 0) {
        /* an index on the same keys under another name (created by another
         * service or an operator) serves as well: indexes are not fatal */
        pw_log(PW_LOG_WARN, "index_not_created", "%s %s: %s", coll, name, why);
    }
    (void)err;
    (void)errlen;
    return 0;
}

static int detect_server(mongoc_client_t *c, int *ferretdb, char *version, size_t vlen, char *err,
                         size_t errlen)
{
    bson_t cmd = BSON_INITIALIZER, reply;
    bson_error_t e;
    bson_iter_t it;
    BSON_APPEND_INT32(&cmd, "buildInfo", 1);
    bool ok = mongoc_client_command_simple(c, "admin", &cmd, NULL, &reply, &e);
    bson_destroy(&cmd);
    if (!ok) {
        bson_destroy(&reply);
        set_err(err, errlen, "buildInfo", &e);
        return -1;
    }
    *ferretdb = bson_iter_init_find(&it, &reply, "ferretdbVersion") ? 1 : 0;
    if (*ferretdb || bson_iter_init_find(&it, &reply, "version"))
        snprintf(version, vlen, "%s", BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL) : "");
    bson_destroy(&reply);
    return 0;
}

static int layout_mongodb(mongoc_database_t *db, long tel_ttl, long alert_ttl, char *err,
                          size_t errlen)
{
    bson_t ts = BSON_INITIALIZER, sub;
    BSON_APPEND_DOCUMENT_BEGIN(&ts, "timeseries", &sub);
    BSON_APPEND_UTF8(&sub, "timeField", "ts");
    BSON_APPEND_UTF8(&sub, "metaField", "meta");
    BSON_APPEND_UTF8(&sub, "granularity", "seconds");
    bson_append_document_end(&ts, &sub);
    BSON_APPEND_INT64(&ts, "expireAfterSeconds", tel_ttl);
    int rc = create_collection(db, "telemetry", &ts, err, errlen);
    bson_destroy(&ts);
    if (rc || create_collection(db, "alerts", NULL, err, errlen) ||
        create_index(db, "alerts", "ts", alert_ttl, err, errlen) ||
        create_collection(db, "ingest_tokens", NULL, err, errlen) ||
        create_index(db, "ingest_tokens", "at", PWC_TOKEN_TTL_S, err, errlen) ||
        create_index(db, "telemetry", "day", 0, err, errlen) ||
        create_index(db, "telemetry", "hour", 0, err, errlen) ||
        create_index(db, "alerts", "hour", 0, err, errlen))
        return -1;
    return 0;
}

/* No secondary indexes on the raw collections: FerretDB 1.24 hands SQLite
 * only {_id} filters, so an index on ts, day or hour would never serve a
 * query (not even the retention sweep) and would only slow every insert. */
static int layout_ferretdb(mongoc_database_t *db, char *err, size_t errlen)
{
    if (create_collection(db, "telemetry", NULL, err, errlen) ||
        create_collection(db, "alerts", NULL, err, errlen))
        return -1;
    return 0;
}

static int layout_common(mongoc_database_t *db, char *err, size_t errlen)
{
    static const char *const ix[][2] = {
        {"devices", "last_seen"},     {"devices", "firmware"},   {"rollup_readings", "hour"},
        {"rollup_readings", "day"},   {"rollup_alerts", "hour"}, {"rollup_alerts", "day"},
        {"rollup_device_day", "day"},
    };
    static const char *const colls[] = {"devices", "rollup_readings", "rollup_alerts",
                                        "rollup_device_day", "consumer_progress"};
    for (size_t i = 0; i < sizeof(colls) / sizeof(*colls); i++) {
        if (create_collection(db, colls[i], NULL, err, errlen))
            return -1;
    }
    for (size_t i = 0; i < sizeof(ix) / sizeof(*ix); i++) {
        if (create_index(db, ix[i][0], ix[i][1], 0, err, errlen))
            return -1;
    }
    return 0;
}

int pwc_store_prepare(pwc_store *s, long telemetry_ttl_s, long alerts_ttl_s, char *err,
                      size_t errlen)
{
    mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
    char version[64] = "";
    int rc = detect_server(c, &s->ferretdb, version, sizeof(version), err, errlen);
    if (rc == 0) {
        mongoc_database_t *db = mongoc_client_get_database(c, s->db);
        rc = s->ferretdb ? layout_ferretdb(db, err, errlen)
                         : layout_mongodb(db, telemetry_ttl_s, alerts_ttl_s, err, errlen);
        if (rc == 0)
            rc = layout_common(db, err, errlen);
        mongoc_database_destroy(db);
    }
    mongoc_client_pool_push(s->pool, c);
    if (rc == 0)
        pw_log_fields(PW_LOG_INFO, "store_ready",
                      json_pack("{s:s,s:s,s:s}", "server", s->ferretdb ? "ferretdb" : "mongodb",
                                "version", version, "db", s->db),
                      "storage layout ensured");
    return rc;
}

/* ---- bulk helpers ---------------------------------------------------- */

typedef struct {
    int ok;          /* 1 when the command completed (write errors allowed) */
    int other_error; /* a write error other than duplicate key */
    int64_t n_inserted, n_matched, n_upserted;
    int *dup; /* per op: 1 when it failed with E11000 (optional) */
    size_t nerrors;
} bulk_result;

static int64_t reply_int(const bson_t *reply, const char *field)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, reply, field) ? bson_iter_as_int64(&it) : 0;
}

/* Executes bulk; fills r. Returns 0 when the server answered (write errors
 * are reported in r), -1 on transport/command failure. Destroys bulk. */
static int bulk_exec(mongoc_bulk_operation_t *bulk, bulk_result *r, size_t nops, char *err,
                     size_t errlen)
{
    bson_t reply;
    bson_error_t e;
    bson_iter_t it, arr;
    uint32_t ok = mongoc_bulk_operation_execute(bulk, &reply, &e);
    mongoc_bulk_operation_destroy(bulk);
    r->n_inserted = reply_int(&reply, "nInserted");
    r->n_matched = reply_int(&reply, "nMatched");
    r->n_upserted = reply_int(&reply, "nUpserted");
    int have_werrs = 0;
    if (bson_iter_init_find(&it, &reply, "writeErrors") && bson_iter_recurse(&it, &arr)) {
        while (bson_iter_next(&arr)) {
            bson_iter_t f;
            bson_t doc;
            const uint8_t *data;
            uint32_t len;
            bson_iter_document(&arr, &len, &data);
            if (!bson_init_static(&doc, data, len))
                continue;
            have_werrs = 1;
            r->nerrors++;
            int64_t code = bson_iter_init_find(&f, &doc, "code") ? bson_iter_as_int64(&f) : 0;
            int64_t idx = bson_iter_init_find(&f, &doc, "index") ? bson_iter_as_int64(&f) : -1;
            if (code != PWC_E_DUPLICATE)
                r->other_error = 1;
            else if (r->dup && idx >= 0 && (size_t)idx < nops)
                r->dup[idx] = 1;
        }
    }
    bson_destroy(&reply);
    if (!ok && !have_werrs) {
        set_err(err, errlen, "bulk write", &e);
        return -1;
    }
    r->ok = 1;
    return 0;
}

static mongoc_bulk_operation_t *bulk_new(mongoc_collection_t *coll)
{
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&opts, "ordered", false);
    mongoc_bulk_operation_t *b = mongoc_collection_create_bulk_operation_with_opts(coll, &opts);
    bson_destroy(&opts);
    return b;
}

/* Update statements per command. FerretDB 1.24 (SQLite) keeps one pooled
 * connection per statement until the command ends; past its pool size (100,
 * shared by every client) update commands wait for each other forever and
 * wedge the database. Three consumers at 20 stay well below it. */
#define PWC_UPDATES_PER_COMMAND 20

typedef struct {
    mongoc_collection_t *coll;
    mongoc_bulk_operation_t *bulk;
    size_t nops;       /* in the current command */
    bulk_result total; /* over all commands */
    int failed;
    char *err;
    size_t errlen;
} update_batch;

static void ub_init(update_batch *u, mongoc_collection_t *coll, char *err, size_t errlen)
{
    memset(u, 0, sizeof(*u));
    u->coll = coll;
    u->err = err;
    u->errlen = errlen;
}

static void ub_flush(update_batch *u)
{
    if (!u->bulk)
        return;
    if (u->failed) {
        mongoc_bulk_operation_destroy(u->bulk);
    } else {
        bulk_result r = {0};
        if (bulk_exec(u->bulk, &r, u->nops, u->err, u->errlen) != 0)
            u->failed = 1;
        u->total.n_matched += r.n_matched;
        u->total.n_upserted += r.n_upserted;
        u->total.n_inserted += r.n_inserted;
        u->total.nerrors += r.nerrors;
        u->total.other_error |= r.other_error;
    }
    u->bulk = NULL;
    u->nops = 0;
}

/* The bulk the next statement goes into. */
static mongoc_bulk_operation_t *ub_next(update_batch *u)
{
    if (u->nops == PWC_UPDATES_PER_COMMAND)
        ub_flush(u);
    if (!u->bulk)
        u->bulk = bulk_new(u->coll);
    u->nops++;
    return u->bulk;
}

/* Runs what is left; -1 when a command failed (transport or server). */
static int ub_finish(update_batch *u)
{
    ub_flush(u);
    return u->failed ? -1 : 0;
}

/* ---- raw documents ----------------------------------------------------- */

static void append_origin(const pwc_entry *e, bson_t *doc)
{
    char origin[PWC_ORIGIN_LEN];
    pwc_origin_format(e->topic, e->partition, e->offset, origin, sizeof(origin));
    BSON_APPEND_UTF8(doc, "origin", origin);
}

static void raw_reading_doc(const pwc_entry *e, bson_t *doc)
{
    const pwc_record *r = e->rec;
    bson_t meta;
    bson_init(doc);
    BSON_APPEND_UTF8(doc, "_id", r->token);
    BSON_APPEND_DATE_TIME(doc, "ts", r->ts_ms);
    BSON_APPEND_UTF8(doc, "day", r->day);
    BSON_APPEND_DATE_TIME(doc, "hour", r->hour_ms);
    BSON_APPEND_DOCUMENT_BEGIN(doc, "meta", &meta);
    BSON_APPEND_UTF8(&meta, "device", r->device);
    BSON_APPEND_UTF8(&meta, "zone", r->zone);
    BSON_APPEND_UTF8(&meta, "type", r->type);
    bson_append_document_end(doc, &meta);
    BSON_APPEND_UTF8(doc, "device", r->device);
    BSON_APPEND_UTF8(doc, "zone", r->zone);
    BSON_APPEND_UTF8(doc, "type", r->type);
    BSON_APPEND_DOUBLE(doc, "value", r->value);
    BSON_APPEND_UTF8(doc, "unit", r->unit);
    BSON_APPEND_DOUBLE(doc, "raw_value", r->raw_value);
    BSON_APPEND_UTF8(doc, "raw_unit", r->raw_unit);
    BSON_APPEND_UTF8(doc, "firmware", r->firmware);
    BSON_APPEND_DATE_TIME(doc, "received", r->received_ms);
    BSON_APPEND_UTF8(doc, "consumer", r->consumer);
    BSON_APPEND_UTF8(doc, "source", r->source);
    append_origin(e, doc);
}

static void raw_alert_doc(const pwc_entry *e, bson_t *doc)
{
    const pwc_record *r = e->rec;
    bson_init(doc);
    BSON_APPEND_UTF8(doc, "_id", r->token);
    BSON_APPEND_DATE_TIME(doc, "ts", r->ts_ms);
    BSON_APPEND_UTF8(doc, "day", r->day);
    BSON_APPEND_DATE_TIME(doc, "hour", r->hour_ms);
    BSON_APPEND_UTF8(doc, "device", r->device);
    BSON_APPEND_UTF8(doc, "zone", r->zone);
    BSON_APPEND_UTF8(doc, "severity", r->severity);
    BSON_APPEND_UTF8(doc, "code", r->code);
    BSON_APPEND_UTF8(doc, "message", r->message);
    BSON_APPEND_UTF8(doc, "firmware", r->firmware);
    BSON_APPEND_DATE_TIME(doc, "received", r->received_ms);
    BSON_APPEND_UTF8(doc, "consumer", r->consumer);
    BSON_APPEND_UTF8(doc, "source", r->source);
    append_origin(e, doc);
}

static void token_gate_doc(const pwc_entry *e, bson_t *doc)
{
    bson_init(doc);
    BSON_APPEND_UTF8(doc, "_id", e->rec->token);
    append_origin(e, doc);
    BSON_APPEND_DATE_TIME(doc, "at", e->rec->received_ms ? e->rec->received_ms : e->rec->ts_ms);
}

typedef void (*doc_builder)(const pwc_entry *e, bson_t *doc);

/* Inserts the docs of entries[sel[i]] unordered; state[sel[i]] = RAW_NEW or RAW_DUP. */
static int insert_docs(mongoc_database_t *db, const char *coll_name, doc_builder build,
                       const pwc_entry *entries, const size_t *sel, size_t nsel, int *state,
                       char *err, size_t errlen)
{
    if (nsel == 0)
        return 0;
    mongoc_collection_t *coll = mongoc_database_get_collection(db, coll_name);
    mongoc_bulk_operation_t *bulk = bulk_new(coll);
    for (size_t i = 0; i < nsel; i++) {
        bson_t doc;
        build(&entries[sel[i]], &doc);
        mongoc_bulk_operation_insert_with_opts(bulk, &doc, NULL, NULL);
        bson_destroy(&doc);
    }
    bulk_result r = {0};
    r.dup = calloc(nsel, sizeof(int));
    int rc = r.dup ? bulk_exec(bulk, &r, nsel, err, errlen) : -1;
    if (!r.dup)
        mongoc_bulk_operation_destroy(bulk);
    if (rc == 0 && r.other_error) {
        snprintf(err, errlen, "insert into %s: write error other than duplicate key", coll_name);
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < nsel; i++)
        state[sel[i]] = r.dup[i] ? RAW_DUP : RAW_NEW;
    free(r.dup);
    mongoc_collection_destroy(coll);
    return rc;
}

/* Documents of coll with the given _ids: calls fn(ctx, id, value) per
 * document found, value being the projected field (or "" when missing) or,
 * with field NULL, the document itself (a const bson_t *). */
typedef void (*origin_fn)(void *ctx, const char *token, const char *origin);

typedef struct {
    const char *field;
    origin_fn fn;
    void *ctx;
} found_cb;

static int each_found(mongoc_collection_t *coll, const bson_t *filter, const bson_t *opts,
                      const found_cb *cb, char *err, size_t errlen)
{
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    const bson_t *doc;
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        const char *id = bson_iter_init_find(&it, doc, "_id") && BSON_ITER_HOLDS_UTF8(&it)
                             ? bson_iter_utf8(&it, NULL)
                             : NULL;
        const char *val = NULL;
        if (cb->field && bson_iter_init_find(&it, doc, cb->field) && BSON_ITER_HOLDS_UTF8(&it))
            val = bson_iter_utf8(&it, NULL);
        if (id)
            cb->fn(cb->ctx, id, cb->field ? (val ? val : "") : (const char *)doc);
    }
    bson_error_t e;
    int rc = 0;
    if (mongoc_cursor_error(cur, &e)) {
        set_err(err, errlen, "find", &e);
        rc = -1;
    }
    mongoc_cursor_destroy(cur);
    return rc;
}

/* FerretDB 1.24 serves only a filter of exactly {_id: <string>} without
 * decoding every document of the collection, so there (point = 1) a few ids
 * are looked up one query each; many ids (after a crash) cost one $in query,
 * a single pass over the collection. MongoDB answers $in from its _id index. */
#define PWC_POINT_LOOKUPS_MAX 32
static int find_by_ids(mongoc_database_t *db, int point, const char *coll_name,
                       const char *const *ids, size_t n, const char *field, origin_fn fn, void *ctx,
                       char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    mongoc_collection_t *coll = mongoc_database_get_collection(db, coll_name);
    bson_t opts = BSON_INITIALIZER, proj;
    if (field) {
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
        BSON_APPEND_INT32(&proj, field, 1);
        bson_append_document_end(&opts, &proj);
    }
    found_cb cb = {field, fn, ctx};
    int rc = 0;
    if (n > PWC_POINT_LOOKUPS_MAX)
        point = 0;
    for (size_t i = 0; rc == 0 && point && i < n; i++) {
        bson_t filter = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&filter, "_id", ids[i]);
        rc = each_found(coll, &filter, &opts, &cb, err, errlen);
        bson_destroy(&filter);
    }
    if (!point) {
        bson_t filter = BSON_INITIALIZER, idf, in;
        char key[24];
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &idf);
        BSON_APPEND_ARRAY_BEGIN(&idf, "$in", &in);
        for (size_t i = 0; i < n; i++) {
            snprintf(key, sizeof(key), "%zu", i);
            BSON_APPEND_UTF8(&in, key, ids[i]);
        }
        bson_append_array_end(&idf, &in);
        bson_append_document_end(&filter, &idf);
        rc = each_found(coll, &filter, &opts, &cb, err, errlen);
        bson_destroy(&filter);
    }
    bson_destroy(&opts);
    mongoc_collection_destroy(coll);
    return rc;
}

/* ---- progress (settled offsets per partition) ------------------------- */

typedef struct {
    tp_progress *items;
    size_t n;
    int loaded; /* settled marks read from the store */
} progress_set;

static tp_progress *progress_get(progress_set *p, const char *topic, int32_t part)
{
    char tp[PWC_ORIGIN_LEN];
    pwc_tp_key(topic, part, tp, sizeof(tp));
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->items[i].tp, tp) == 0)
            return &p->items[i];
    }
    tp_progress *t = &p->items[p->n++];
    memcpy(t->tp, tp, sizeof(tp));
    t->settled = -1;
    t->max_off = -1;
    return t;
}

static void progress_seen(void *ctx, const char *id, const char *docp)
{
    progress_set *p = ctx;
    const bson_t *doc = (const bson_t *)docp;
    bson_iter_t it;
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->items[i].tp, id) == 0 && bson_iter_init_find(&it, doc, "settled"))
            p->items[i].settled = bson_iter_as_int64(&it);
    }
}

static int progress_read(mongoc_database_t *db, progress_set *p, char *err, size_t errlen)
{
    if (p->loaded)
        return 0;
    const char **ids = calloc(p->n ? p->n : 1, sizeof(char *));
    if (!ids)
        return -1;
    for (size_t i = 0; i < p->n; i++)
        ids[i] = p->items[i].tp;
    int rc =
        find_by_ids(db, 0, "consumer_progress", ids, p->n, NULL, progress_seen, p, err, errlen);
    free(ids);
    p->loaded = rc == 0;
    return rc;
}

static int progress_write(mongoc_database_t *db, const progress_set *p, char *err, size_t errlen)
{
    mongoc_collection_t *coll = mongoc_database_get_collection(db, "consumer_progress");
    update_batch ub;
    ub_init(&ub, coll, err, errlen);
    bson_t upsert = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&upsert, "upsert", true);
    for (size_t i = 0; i < p->n; i++) {
        bson_t sel = BSON_INITIALIZER, upd = BSON_INITIALIZER, mx;
        BSON_APPEND_UTF8(&sel, "_id", p->items[i].tp);
        BSON_APPEND_DOCUMENT_BEGIN(&upd, "$max", &mx);
        BSON_APPEND_INT64(&mx, "settled", p->items[i].max_off);
        bson_append_document_end(&upd, &mx);
        mongoc_bulk_operation_update_one_with_opts(ub_next(&ub), &sel, &upd, &upsert, NULL);
        bson_destroy(&sel);
        bson_destroy(&upd);
    }
    bson_destroy(&upsert);
    int rc = ub_finish(&ub);
    bulk_result r = ub.total;
    mongoc_collection_destroy(coll);
    /* a concurrent first upsert of the same partition may collide: harmless,
     * the settled mark is a lower bound and the next batch raises it */
    if (rc == 0 && r.other_error) {
        snprintf(err, errlen, "consumer_progress: write error");
        return -1;
    }
    return rc;
}

/* Adds a completely written batch's offsets to the pending marks and writes
 * them at most once per PWC_PROGRESS_EVERY_US (force: now). A mark that is
 * not written yet only means more duplicates are looked up after a crash. */
static int progress_note(pwc_store *s, mongoc_database_t *db, const progress_set *batch, int force,
                         char *err, size_t errlen)
{
    for (size_t i = 0; i < batch->n; i++) {
        size_t q = 0;
        while (q < s->npending && strcmp(s->pending[q].tp, batch->items[i].tp) != 0)
            q++;
        if (q == s->npending) {
            if (s->npending == PWC_PENDING_TP) {
                force = 1;
                break;
            }
            s->pending[q] = batch->items[i];
            s->npending++;
        }
        if (batch->items[i].max_off > s->pending[q].max_off)
            s->pending[q].max_off = batch->items[i].max_off;
    }
    int64_t now = pw_monotonic_us();
    if (s->npending == 0 || (!force && now - s->progress_written_us < PWC_PROGRESS_EVERY_US))
        return 0;
    progress_set all = {s->pending, s->npending, 0};
    int rc = progress_write(db, &all, err, errlen);
    if (rc == 0) {
        s->npending = 0;
        s->progress_written_us = now;
    }
    return rc;
}

int pwc_store_flush_progress(pwc_store *s, char *err, size_t errlen)
{
    progress_set none = {NULL, 0, 0};
    mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
    mongoc_database_t *db = mongoc_client_get_database(c, s->db);
    int rc = progress_note(s, db, &none, 1, err, errlen);
    mongoc_database_destroy(db);
    mongoc_client_pool_push(s->pool, c);
    return rc;
}

/* ---- dedupe: which deliveries contribute to rollups ------------------- */

typedef struct {
    pwc_entry *entries;
    const size_t *idx;
    size_t n;
    int *same_origin;
} origin_ctx;

static void origin_seen(void *vctx, const char *token, const char *origin)
{
    origin_ctx *c = vctx;
    char mine[PWC_ORIGIN_LEN];
    for (size_t i = 0; i < c->n; i++) {
        const pwc_entry *e = &c->entries[c->idx[i]];
        if (strcmp(e->rec->token, token) != 0)
            continue;
        pwc_origin_format(e->topic, e->partition, e->offset, mine, sizeof(mine));
        if (strcmp(mine, origin) == 0)
            c->same_origin[i] = 1;
    }
}

/* Duplicates above their partition's settled mark may be the redelivery of a
 * message whose first delivery inserted the document but crashed before its
 * rollups settled: they contribute iff the stored origin is their own. */
static int resolve_uncertain(mongoc_database_t *db, int point, const char *gate, pwc_entry *entries,
                             const size_t *idx, size_t n, int *same_origin, char *err,
                             size_t errlen)
{
    const char **ids = calloc(n ? n : 1, sizeof(char *));
    if (!ids)
        return -1;
    for (size_t i = 0; i < n; i++)
        ids[i] = entries[idx[i]].rec->token;
    origin_ctx c = {entries, idx, n, same_origin};
    int rc = find_by_ids(db, point, gate, ids, n, "origin", origin_seen, &c, err, errlen);
    free(ids);
    return rc;
}

/* ---- devices -------------------------------------------------------------- */

static int cmp_device(const void *a, const void *b)
{
    const pwc_entry *x = *(const pwc_entry *const *)a, *y = *(const pwc_entry *const *)b;
    return strcmp(x->rec->device, y->rec->device);
}

static device_seen *device_slot(pwc_store *s, const char *device)
{
    uint32_t h = 2166136261u;
    for (const char *p = device; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return &s->devices[h % PWC_DEVICE_CACHE];
}

static int device_known(pwc_store *s, const char *device)
{
    return strcmp(device_slot(s, device)->device, device) == 0;
}

/* Forgets what the slot held and records "absent from the store". */
static device_seen *device_claim(pwc_store *s, const char *device)
{
    device_seen *d = device_slot(s, device);
    memset(d, 0, sizeof(*d));
    snprintf(d->device, sizeof(d->device), "%s", device);
    d->first = INT64_MAX;
    d->last = INT64_MIN;
    return d;
}

static void copy_utf8(const bson_t *doc, const char *field, char *out, size_t outlen)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, field) && BSON_ITER_HOLDS_UTF8(&it))
        snprintf(out, outlen, "%s", bson_iter_utf8(&it, NULL));
}

static void device_loaded(void *ctx, const char *id, const char *docp)
{
    const bson_t *doc = (const bson_t *)docp;
    device_seen *d = device_claim(ctx, id);
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, "first_seen") && BSON_ITER_HOLDS_DATE_TIME(&it))
        d->first = bson_iter_date_time(&it);
    if (bson_iter_init_find(&it, doc, "last_seen") && BSON_ITER_HOLDS_DATE_TIME(&it))
        d->last = bson_iter_date_time(&it);
    copy_utf8(doc, "zone", d->zone, sizeof(d->zone));
    copy_utf8(doc, "firmware", d->firmware, sizeof(d->firmware));
}

static int device_unchanged(pwc_store *s, const pwc_record *newest, int64_t first)
{
    const device_seen *d = device_slot(s, newest->device);
    return strcmp(d->device, newest->device) == 0 && d->first != INT64_MAX &&
           first >= d->first - PWC_DEVICE_REFRESH_MS &&
           newest->ts_ms <= d->last + PWC_DEVICE_REFRESH_MS &&
           (newest->ts_ms < d->last ||
            (strcmp(d->zone, newest->zone) == 0 && strcmp(d->firmware, newest->firmware) == 0));
}

/* One statement, filter {_id} only: first_seen/last_seen widen, zone and
 * firmware follow the batch when it is at least as new as what is stored. */
static void device_op(pwc_store *s, update_batch *ub, const pwc_record *newest, int64_t first)
{
    const device_seen *d = device_slot(s, newest->device);
    bson_t sel = BSON_INITIALIZER, upd = BSON_INITIALIZER, f, opts = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&sel, "_id", newest->device);
    BSON_APPEND_DOCUMENT_BEGIN(&upd, "$min", &f);
    BSON_APPEND_DATE_TIME(&f, "first_seen", first);
    bson_append_document_end(&upd, &f);
    BSON_APPEND_DOCUMENT_BEGIN(&upd, "$max", &f);
    BSON_APPEND_DATE_TIME(&f, "last_seen", newest->ts_ms);
    bson_append_document_end(&upd, &f);
    BSON_APPEND_DOCUMENT_BEGIN(&upd, newest->ts_ms >= d->last ? "$set" : "$setOnInsert", &f);
    BSON_APPEND_UTF8(&f, "zone", newest->zone);
    BSON_APPEND_UTF8(&f, "firmware", newest->firmware);
    bson_append_document_end(&upd, &f);
    BSON_APPEND_BOOL(&opts, "upsert", true);
    mongoc_bulk_operation_update_one_with_opts(ub_next(ub), &sel, &upd, &opts, NULL);
    bson_destroy(&sel);
    bson_destroy(&upd);
    bson_destroy(&opts);
}

static void device_remember(pwc_store *s, const pwc_record *newest, int64_t first)
{
    device_seen *d = device_slot(s, newest->device);
    if (first < d->first)
        d->first = first;
    if (newest->ts_ms >= d->last) {
        d->last = newest->ts_ms;
        snprintf(d->zone, sizeof(d->zone), "%s", newest->zone);
        snprintf(d->firmware, sizeof(d->firmware), "%s", newest->firmware);
    }
}

typedef struct {
    const pwc_record *newest;
    int64_t first;
} device_write;

/* Per device of the batch: its newest record and earliest ts. */
static device_write *devices_of_batch(const pwc_entry *entries, size_t n, size_t *nout)
{
    const pwc_entry **sorted = malloc(n * sizeof(*sorted));
    device_write *out = malloc(n * sizeof(*out));
    *nout = 0;
    if (!sorted || !out) {
        free(sorted);
        free(out);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        sorted[i] = &entries[i];
    qsort(sorted, n, sizeof(*sorted), cmp_device);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        const pwc_record *newest = sorted[i]->rec;
        int64_t first = newest->ts_ms;
        for (; j < n && strcmp(sorted[j]->rec->device, sorted[i]->rec->device) == 0; j++) {
            if (sorted[j]->rec->ts_ms >= newest->ts_ms)
                newest = sorted[j]->rec;
            if (sorted[j]->rec->ts_ms < first)
                first = sorted[j]->rec->ts_ms;
        }
        out[(*nout)++] = (device_write){newest, first};
        i = j;
    }
    free(sorted);
    return out;
}

/* Reads the devices this process knows nothing about. */
static int devices_load(pwc_store *s, mongoc_database_t *db, const device_write *w, size_t n,
                        char *err, size_t errlen)
{
    const char **ids = malloc((n ? n : 1) * sizeof(char *));
    if (!ids)
        return -1;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!device_known(s, w[i].newest->device)) {
            device_claim(s, w[i].newest->device);
            ids[m++] = w[i].newest->device;
        }
    }
    int rc = find_by_ids(db, s->ferretdb, "devices", ids, m, NULL, device_loaded, s, err, errlen);
    for (size_t i = 0; rc != 0 && i < m; i++)
        device_slot(s, ids[i])->device[0] = '\0'; /* unknown again */
    free(ids);
    return rc;
}

static int write_devices(pwc_store *s, mongoc_database_t *db, pwc_entry *entries, size_t n,
                         char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    size_t nw = 0, ntodo = 0;
    device_write *todo = devices_of_batch(entries, n, &nw);
    if (!todo)
        return -1;
    int rc = devices_load(s, db, todo, nw, err, errlen);
    for (size_t i = 0; rc == 0 && i < nw; i++) {
        if (!device_unchanged(s, todo[i].newest, todo[i].first))
            todo[ntodo++] = todo[i];
    }
    /* concurrent first upserts of one device by two consumers can collide
     * (E11000); every op is idempotent, so the bulk is simply run again */
    int left = rc == 0 && ntodo > 0;
    for (int attempt = 0; attempt < 3 && left; attempt++) {
        mongoc_collection_t *coll = mongoc_database_get_collection(db, "devices");
        update_batch ub;
        ub_init(&ub, coll, err, errlen);
        for (size_t i = 0; i < ntodo; i++)
            device_op(s, &ub, todo[i].newest, todo[i].first);
        rc = ub_finish(&ub);
        mongoc_collection_destroy(coll);
        left = rc == 0 && ub.total.nerrors > 0;
        if (left)
            snprintf(err, errlen, "devices: %zu write errors", ub.total.nerrors);
    }
    if (left)
        rc = -1;
    for (size_t i = 0; i < ntodo; i++) {
        if (rc == 0)
            device_remember(s, todo[i].newest, todo[i].first);
        else
            device_slot(s, todo[i].newest->device)->device[0] = '\0';
    }
    free(todo);
    return rc;
}

/* ---- device-day presence ---------------------------------------------- */

/* rollup_device_day: one document per device and UTC day it was active,
 * inserted once with the origin of the delivery that inserted it. That
 * delivery is the one that adds the device to its hour's active devices
 * (new_device). A duplicate key means another delivery did, except after a
 * crash between the insert and the rollups: a duplicate of a delivery above
 * its partition's settled mark is looked up, and if the stored origin is one
 * of this batch's deliveries, that delivery is the owner. */
typedef struct {
    char key[PWC_ROLLUP_KEY_LEN];
    size_t owner; /* entry index */
    int dup;
} presence_key;

/* The batch's device-day keys not known to be stored, each with the entry
 * that would insert it (the first contributing one, else the first). */
static size_t presence_keys(pwc_store *s, const pwc_entry *entries, size_t n, presence_key *out)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        char key[PWC_ROLLUP_KEY_LEN];
        if (pwc_device_day_key(entries[i].rec, key, sizeof(key)) != 0 ||
            pwc_cache_get(s->presence, key))
            continue;
        size_t q = 0;
        while (q < m && strcmp(out[q].key, key) != 0)
            q++;
        if (q < m) {
            if (!entries[out[q].owner].contributes && entries[i].contributes)
                out[q].owner = i;
            continue;
        }
        memcpy(out[m].key, key, sizeof(key));
        out[m].owner = i;
        out[m].dup = 0;
        m++;
    }
    return m;
}

/* The presence document that delivery e inserts (doc_builder for insert_docs). */
static void presence_doc(const pwc_entry *e, bson_t *doc)
{
    char key[PWC_ROLLUP_KEY_LEN];
    pwc_device_day_key(e->rec, key, sizeof(key)); /* fits: checked by presence_keys */
    bson_init(doc);
    BSON_APPEND_UTF8(doc, "_id", key);
    BSON_APPEND_UTF8(doc, "day", e->rec->day);
    BSON_APPEND_UTF8(doc, "device", e->rec->device);
    BSON_APPEND_UTF8(doc, "zone", e->rec->zone);
    append_origin(e, doc);
}

static int presence_insert(mongoc_database_t *db, const pwc_entry *entries, size_t n,
                           presence_key *keys, size_t m, char *err, size_t errlen)
{
    size_t *owners = malloc(m * sizeof(size_t));
    int *state = calloc(n, sizeof(int));
    int rc = owners && state ? 0 : -1;
    for (size_t q = 0; rc == 0 && q < m; q++)
        owners[q] = keys[q].owner;
    if (rc == 0)
        rc = insert_docs(db, "rollup_device_day", presence_doc, entries, owners, m, state, err,
                         errlen);
    for (size_t q = 0; rc == 0 && q < m; q++)
        keys[q].dup = state[keys[q].owner] == RAW_DUP;
    free(owners);
    free(state);
    return rc;
}

typedef struct {
    pwc_entry *entries;
    size_t n;
} owner_ctx;

/* A stored presence origin that is one of this batch's deliveries makes
 * that delivery the owner. */
static void presence_origin_seen(void *vctx, const char *key, const char *origin)
{
    owner_ctx *c = vctx;
    char mine[PWC_ORIGIN_LEN], k[PWC_ROLLUP_KEY_LEN];
    for (size_t i = 0; i < c->n; i++) {
        pwc_entry *e = &c->entries[i];
        pwc_origin_format(e->topic, e->partition, e->offset, mine, sizeof(mine));
        if (strcmp(mine, origin) == 0 && pwc_device_day_key(e->rec, k, sizeof(k)) == 0 &&
            strcmp(k, key) == 0)
            e->new_device = 1;
    }
}

/* Duplicates that a delivery above its partition's settled mark may have
 * inserted before a crash (prog is loaded). */
static int presence_resolve(pwc_store *s, mongoc_database_t *db, pwc_entry *entries, size_t n,
                            const presence_key *keys, size_t m, progress_set *prog, char *err,
                            size_t errlen)
{
    const char **ids = malloc((m ? m : 1) * sizeof(char *));
    if (!ids)
        return -1;
    size_t u = 0;
    for (size_t q = 0; q < m; q++) {
        if (!keys[q].dup)
            continue;
        int uncertain = 0;
        for (size_t i = 0; i < n && !uncertain; i++) {
            char k[PWC_ROLLUP_KEY_LEN];
            const tp_progress *t = progress_get(prog, entries[i].topic, entries[i].partition);
            uncertain = entries[i].offset > t->settled &&
                        pwc_device_day_key(entries[i].rec, k, sizeof(k)) == 0 &&
                        strcmp(k, keys[q].key) == 0;
        }
        if (uncertain)
            ids[u++] = keys[q].key;
    }
    owner_ctx c = {entries, n};
    int rc = find_by_ids(db, s->ferretdb, "rollup_device_day", ids, u, "origin",
                         presence_origin_seen, &c, err, errlen);
    free(ids);
    return rc;
}

static int write_presence(pwc_store *s, mongoc_database_t *db, pwc_entry *entries, size_t n,
                          progress_set *prog, char *err, size_t errlen)
{
    presence_key *keys = malloc((n ? n : 1) * sizeof(*keys));
    if (!keys)
        return -1;
    size_t m = presence_keys(s, entries, n, keys);
    int rc = m ? presence_insert(db, entries, n, keys, m, err, errlen) : 0;
    int any_dup = 0;
    for (size_t q = 0; rc == 0 && q < m; q++) {
        if (keys[q].dup)
            any_dup = 1;
        else
            entries[keys[q].owner].new_device = 1;
    }
    if (rc == 0 && any_dup) {
        rc = progress_read(db, prog, err, errlen);
        if (rc == 0)
            rc = presence_resolve(s, db, entries, n, keys, m, prog, err, errlen);
    }
    free(keys);
    return rc;
}

/* After the whole batch is stored: its presence keys need no insert again.
 * (Not before: a batch retried after a failed rollup write must find its own
 * presence documents again to know which deliveries add their devices.) */
static void presence_remember(pwc_store *s, const pwc_entry *entries, size_t n)
{
    const char none = 0;
    char key[PWC_ROLLUP_KEY_LEN];
    for (size_t i = 0; i < n; i++) {
        if (pwc_device_day_key(entries[i].rec, key, sizeof(key)) == 0)
            pwc_cache_put(s->presence, key, &none);
    }
}

/* ---- rollups ---------------------------------------------------------- */

/* Cache key of a bucket: "<collection>/<_id>". */
static void bucket_cache_key(pwc_rollup_kind k, const char *id, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", pwc_rollup_collection(k), id);
}

static void drop_state(void *v)
{
    pwc_rollup_state_free(v);
}

typedef struct {
    pwc_cache *cache;
    pwc_rollup_kind kind;
    int failed;
} bucket_ctx;

static void bucket_loaded(void *vctx, const char *id, const char *docp)
{
    bucket_ctx *c = vctx;
    char key[PWC_ROLLUP_KEY_LEN + 32];
    pwc_rollup_state st;
    bucket_cache_key(c->kind, id, key, sizeof(key));
    if (pwc_rollup_state_from_doc(c->kind, (const bson_t *)docp, &st) != 0 ||
        pwc_cache_put(c->cache, key, &st) != 0) {
        pwc_rollup_state_free(&st);
        c->failed = 1;
    }
}

/* Makes sure every group's bucket state is in the cache: reads the unknown
 * ones; a bucket the store does not have starts empty. */
static int buckets_load(pwc_store *s, mongoc_database_t *db, pwc_rollup_kind k,
                        const pwc_rollup_groups *g, size_t *reads, char *err, size_t errlen)
{
    const char **ids = malloc(g->n * sizeof(char *));
    if (!ids)
        return -1;
    char key[PWC_ROLLUP_KEY_LEN + 32];
    size_t m = 0;
    pwc_cache_reserve(s->buckets, g->n);
    for (size_t i = 0; i < g->n; i++) {
        bucket_cache_key(k, g->items[i].key, key, sizeof(key));
        if (!pwc_cache_get(s->buckets, key))
            ids[m++] = g->items[i].key;
    }
    *reads += m;
    bucket_ctx ctx = {s->buckets, k, 0};
    int rc = find_by_ids(db, s->ferretdb, pwc_rollup_collection(k), ids, m, NULL, bucket_loaded,
                         &ctx, err, errlen);
    if (rc == 0 && ctx.failed) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    for (size_t i = 0; i < m; i++) {
        bucket_cache_key(k, ids[i], key, sizeof(key));
        pwc_rollup_state empty;
        pwc_rollup_state_init(&empty);
        if (rc != 0)
            pwc_cache_remove(s->buckets, key);
        else if (!pwc_cache_get(s->buckets, key) && pwc_cache_put(s->buckets, key, &empty) != 0)
            rc = -1;
    }
    free(ids);
    return rc;
}

/* Folds the batch into the known bucket states and writes each changed
 * bucket's whole state. A bucket whose write the store did not acknowledge is
 * forgotten (its state there is unknown) and read again on the retry. */
static int rollup_apply(pwc_store *s, mongoc_database_t *db, pwc_rollup_kind k,
                        const pwc_entry *entries, size_t n, size_t *reads, char *err, size_t errlen)
{
    pwc_rollup_groups g;
    if (pwc_rollup_group_entries(k, entries, n, &g) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = g.n ? buckets_load(s, db, k, &g, reads, err, errlen) : 0;
    mongoc_collection_t *coll = mongoc_database_get_collection(db, pwc_rollup_collection(k));
    update_batch ub;
    ub_init(&ub, coll, err, errlen);
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&opts, "upsert", true);
    char key[PWC_ROLLUP_KEY_LEN + 32];
    for (size_t i = 0; rc == 0 && i < g.n; i++) {
        bucket_cache_key(k, g.items[i].key, key, sizeof(key));
        pwc_rollup_state *st = pwc_cache_get(s->buckets, key);
        long counted = st ? pwc_rollup_fold(k, st, &g.items[i], entries) : -1;
        if (counted < 0) {
            snprintf(err, errlen, "%s: bucket state lost (out of memory)",
                     pwc_rollup_collection(k));
            rc = -1;
        } else if (counted > 0) {
            bson_t sel = BSON_INITIALIZER, update;
            BSON_APPEND_UTF8(&sel, "_id", g.items[i].key);
            pwc_rollup_set_op(k, &g.items[i], entries, st, &update);
            mongoc_bulk_operation_update_one_with_opts(ub_next(&ub), &sel, &update, &opts, NULL);
            bson_destroy(&sel);
            bson_destroy(&update);
        }
    }
    bson_destroy(&opts);
    if (ub_finish(&ub) != 0)
        rc = -1;
    if (rc == 0 && ub.total.nerrors) {
        snprintf(err, errlen, "%s: %zu write errors", pwc_rollup_collection(k), ub.total.nerrors);
        rc = -1;
    }
    for (size_t i = 0; rc != 0 && i < g.n; i++) {
        bucket_cache_key(k, g.items[i].key, key, sizeof(key));
        pwc_cache_remove(s->buckets, key);
    }
    mongoc_collection_destroy(coll);
    pwc_rollup_groups_free(&g);
    return rc;
}

/* ---- the write path --------------------------------------------------- */

typedef struct {
    size_t *tel, *alr, *uncertain;
    size_t ntel, nalr, nuncertain;
    int *state, *same;
} write_scratch;

static void scratch_free(write_scratch *w)
{
    free(w->tel);
    free(w->alr);
    free(w->uncertain);
    free(w->state);
    free(w->same);
}

static int raw_insert(pwc_store *s, mongoc_database_t *db, pwc_entry *entries, write_scratch *w,
                      char *err, size_t errlen)
{
    if (insert_docs(db, "alerts", raw_alert_doc, entries, w->alr, w->nalr, w->state, err, errlen) !=
        0)
        return -1;
    if (s->ferretdb)
        return insert_docs(db, "telemetry", raw_reading_doc, entries, w->tel, w->ntel, w->state,
                           err, errlen);
    /* MongoDB time series: _id is not unique there; ingest_tokens is the gate */
    if (insert_docs(db, "ingest_tokens", token_gate_doc, entries, w->tel, w->ntel, w->state, err,
                    errlen) != 0)
        return -1;
    size_t nnew = 0;
    for (size_t i = 0; i < w->ntel; i++) {
        if (w->state[w->tel[i]] == RAW_NEW)
            w->tel[nnew++] = w->tel[i];
    }
    int rc = 0;
    if (nnew) {
        mongoc_collection_t *coll = mongoc_database_get_collection(db, "telemetry");
        mongoc_bulk_operation_t *bulk = bulk_new(coll);
        for (size_t i = 0; i < nnew; i++) {
            bson_t doc;
            raw_reading_doc(&entries[w->tel[i]], &doc);
            mongoc_bulk_operation_insert_with_opts(bulk, &doc, NULL, NULL);
            bson_destroy(&doc);
        }
        bulk_result r = {0};
        rc = bulk_exec(bulk, &r, nnew, err, errlen);
        if (rc == 0 && r.nerrors)
            rc = -1;
        mongoc_collection_destroy(coll);
    }
    return rc;
}

typedef struct {
    const char *token;
    int found;
} presence;

static void presence_seen(void *ctx, const char *id, const char *docp)
{
    (void)docp;
    presence *p = ctx;
    for (; p->token; p++) {
        if (strcmp(p->token, id) == 0)
            p->found = 1;
    }
}

/* MongoDB: a gate entry of ours without its time-series document (crash
 * between the two inserts) gets the document now. */
static int restore_missing_readings(mongoc_database_t *db, pwc_entry *entries, const size_t *idx,
                                    size_t n, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    presence *p = calloc(n + 1, sizeof(*p));
    const char **ids = calloc(n, sizeof(char *));
    int rc = (p && ids) ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++)
        ids[i] = p[i].token = entries[idx[i]].rec->token;
    if (rc == 0)
        rc = find_by_ids(db, 0, "telemetry", ids, n, NULL, presence_seen, p, err, errlen);
    mongoc_collection_t *coll = mongoc_database_get_collection(db, "telemetry");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (p[i].found)
            continue;
        bson_t doc;
        bson_error_t e;
        raw_reading_doc(&entries[idx[i]], &doc);
        if (!mongoc_collection_insert_one(coll, &doc, NULL, NULL, &e)) {
            set_err(err, errlen, "telemetry", &e);
            rc = -1;
        }
        bson_destroy(&doc);
    }
    mongoc_collection_destroy(coll);
    free(p);
    free(ids);
    return rc;
}

static int decide_contributions(pwc_store *s, mongoc_database_t *db, pwc_entry *entries, size_t n,
                                write_scratch *w, progress_set *prog, char *err, size_t errlen)
{
    int any_dup = 0;
    for (size_t i = 0; i < n; i++) {
        entries[i].contributes = w->state[i] == RAW_NEW;
        any_dup |= w->state[i] == RAW_DUP;
    }
    if (!any_dup)
        return 0;
    if (progress_read(db, prog, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (w->state[i] != RAW_DUP)
            continue;
        tp_progress *t = progress_get(prog, entries[i].topic, entries[i].partition);
        if (entries[i].offset > t->settled)
            w->uncertain[w->nuncertain++] = i;
    }
    /* two passes: alerts (raw collection is the gate) and telemetry */
    for (int pass = 0; pass < 2; pass++) {
        pwc_kind kind = pass == 0 ? PWC_ALERT : PWC_READING;
        const char *gate = kind == PWC_ALERT ? "alerts"
                           : s->ferretdb     ? "telemetry"
                                             : "ingest_tokens";
        size_t m = 0;
        size_t *sel = malloc((w->nuncertain ? w->nuncertain : 1) * sizeof(size_t));
        if (!sel)
            return -1;
        for (size_t i = 0; i < w->nuncertain; i++) {
            if (entries[w->uncertain[i]].rec->kind == kind)
                sel[m++] = w->uncertain[i];
        }
        memset(w->same, 0, n * sizeof(int));
        int rc = resolve_uncertain(db, s->ferretdb, gate, entries, sel, m, w->same, err, errlen);
        size_t nmine = 0;
        for (size_t i = 0; rc == 0 && i < m; i++) {
            if (w->same[i]) {
                entries[sel[i]].contributes = 1;
                sel[nmine++] = sel[i];
            }
        }
        if (rc == 0 && kind == PWC_READING && !s->ferretdb)
            rc = restore_missing_readings(db, entries, sel, nmine, err, errlen);
        free(sel);
        if (rc != 0)
            return -1;
    }
    return 0;
}

int pwc_store_write(pwc_store *s, pwc_entry *entries, size_t n, pwc_write_result *res, char *err,
                    size_t errlen)
{
    memset(res, 0, sizeof(*res));
    if (n == 0)
        return 0;
    write_scratch w = {0};
    progress_set prog = {0};
    w.tel = malloc(n * sizeof(size_t));
    w.alr = malloc(n * sizeof(size_t));
    w.uncertain = malloc(n * sizeof(size_t));
    w.state = calloc(n, sizeof(int));
    w.same = calloc(n, sizeof(int));
    prog.items = calloc(n, sizeof(tp_progress));
    if (!w.tel || !w.alr || !w.uncertain || !w.state || !w.same || !prog.items) {
        scratch_free(&w);
        free(prog.items);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        entries[i].new_device = 0;
        if (entries[i].rec->kind == PWC_READING)
            w.tel[w.ntel++] = i;
        else
            w.alr[w.nalr++] = i;
        tp_progress *t = progress_get(&prog, entries[i].topic, entries[i].partition);
        if (entries[i].offset > t->max_off)
            t->max_off = entries[i].offset;
    }
    mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
    mongoc_database_t *db = mongoc_client_get_database(c, s->db);
    /* No lock: raw documents, presence and devices are idempotent by
     * themselves and every rollup document has one writer, the owner of its
     * partition (see rollup.h). */
    int64_t t[8];
    t[0] = pw_monotonic_us();
    int rc = raw_insert(s, db, entries, &w, err, errlen);
    t[1] = pw_monotonic_us();
    if (rc == 0)
        rc = decide_contributions(s, db, entries, n, &w, &prog, err, errlen);
    t[2] = pw_monotonic_us();
    if (rc == 0)
        rc = write_devices(s, db, entries, n, err, errlen);
    t[3] = pw_monotonic_us();
    if (rc == 0)
        rc = write_presence(s, db, entries, n, &prog, err, errlen);
    t[4] = pw_monotonic_us();
    for (int k = 0; k < PWC_ROLLUP_KINDS; k++) {
        if (rc == 0)
            rc = rollup_apply(s, db, (pwc_rollup_kind)k, entries, n, &res->bucket_reads, err,
                              errlen);
        t[5 + k] = pw_monotonic_us();
    }
    if (rc == 0)
        rc = progress_note(s, db, &prog, 0, err, errlen);
    if (rc == 0)
        presence_remember(s, entries, n);
    t[7] = pw_monotonic_us();
    if (rc == 0 && pw_log_enabled(PW_LOG_DEBUG))
        pw_log_fields(PW_LOG_DEBUG, "store_timing",
                      json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "n", (json_int_t)n, "raw_us",
                                (json_int_t)(t[1] - t[0]), "dedupe_us", (json_int_t)(t[2] - t[1]),
                                "devices_us", (json_int_t)(t[3] - t[2]), "presence_us",
                                (json_int_t)(t[4] - t[3]), "readings_us", (json_int_t)(t[5] - t[4]),
                                "alerts_us", (json_int_t)(t[6] - t[5]), "progress_us",
                                (json_int_t)(t[7] - t[6])),
                      "batch written");
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            if (w.state[i] == RAW_DUP)
                res->duplicates++;
            else if (entries[i].rec->kind == PWC_READING)
                res->stored_readings++;
            else
                res->stored_alerts++;
        }
    }
    mongoc_database_destroy(db);
    mongoc_client_pool_push(s->pool, c);
    scratch_free(&w);
    free(prog.items);
    return rc;
}

/* ---- retention --------------------------------------------------------- */

static int64_t delete_older(mongoc_database_t *db, const char *coll_name, int64_t cutoff_ms,
                            char *err, size_t errlen)
{
    mongoc_collection_t *coll = mongoc_database_get_collection(db, coll_name);
    bson_t sel = BSON_INITIALIZER, cond, reply;
    bson_error_t e;
    BSON_APPEND_DOCUMENT_BEGIN(&sel, "ts", &cond);
    BSON_APPEND_DATE_TIME(&cond, "$lt", cutoff_ms);
    bson_append_document_end(&sel, &cond);
    int64_t n = -1;
    if (mongoc_collection_delete_many(coll, &sel, NULL, &reply, &e))
        n = reply_int(&reply, "deletedCount");
    else
        set_err(err, errlen, coll_name, &e);
    bson_destroy(&reply);
    bson_destroy(&sel);
    mongoc_collection_destroy(coll);
    return n;
}

int64_t pwc_store_sweep(pwc_store *s, int64_t now_ms, long telemetry_ttl_s, long alerts_ttl_s,
                        char *err, size_t errlen)
{
    mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
    mongoc_database_t *db = mongoc_client_get_database(c, s->db);
    int64_t a = delete_older(db, "telemetry", now_ms - telemetry_ttl_s * 1000LL, err, errlen);
    int64_t b =
        a < 0 ? -1 : delete_older(db, "alerts", now_ms - alerts_ttl_s * 1000LL, err, errlen);
    mongoc_database_destroy(db);
    mongoc_client_pool_push(s->pool, c);
    return (a < 0 || b < 0) ? -1 : a + b;
}
