/* layout: the storage layout, created idempotently at startup — the only
 * code that differs between MongoDB and FerretDB. MongoDB gets the telemetry
 * time-series collection and TTL indexes; FerretDB plain collections and the
 * indexes of the fields its pushed-down equality filters and the retention
 * sweep use (see store_int.h, docs/architecture.md "Storage layout"). */
#include <stdio.h>
#include <string.h>

#include "pw_log.h"
#include "pw_schema.h"
#include "store_int.h"

#define PWC_ROLLUP_EXTRA_S 86400L /* rollups outlive the raw data by a day */

static int run_cmd(mongoc_database_t *db, bson_t *cmd, int ok_code, char *err, size_t errlen,
                   const char *what)
{
    bson_error_t e;
    bson_t reply;
    bool ok = mongoc_database_command_simple(db, cmd, NULL, &reply, &e);
    bson_destroy(&reply);
    bson_destroy(cmd);
    if (ok || (ok_code && (int)e.code == ok_code)) {
        return 0;
    }
    pwc_set_err(err, errlen, what, &e);
    return -1;
}

static int create_collection(mongoc_database_t *db, const char *name, const bson_t *extra,
                             char *err, size_t errlen)
{
    bson_t *cmd = bson_new();
    BSON_APPEND_UTF8(cmd, "create", name);
    if (extra) {
        bson_concat(cmd, extra);
    }
    return run_cmd(db, cmd, PWC_E_NS_EXISTS, err, errlen, name);
}

/* keys: "ts" or "day,res" (ascending). ttl_s > 0 makes it a TTL index. An
 * index that cannot be created (e.g. the same keys under another name) is
 * logged: it serves as well, so it is not fatal. */
static void create_index(mongoc_database_t *db, const char *coll, const char *keys, long ttl_s)
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
    if (ttl_s > 0) {
        BSON_APPEND_INT64(&ix, "expireAfterSeconds", ttl_s);
    }
    bson_append_document_end(&arr, &ix);
    bson_append_array_end(cmd, &arr);
    char why[768] = "";
    if (run_cmd(db, cmd, 0, why, sizeof(why), coll) != 0) {
        pw_log(PW_LOG_WARN, "index_not_created", "%s %s: %s", coll, name, why);
    }
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
        pwc_set_err(err, errlen, "buildInfo", &e);
        return -1;
    }
    *ferretdb = bson_iter_init_find(&it, &reply, "ferretdbVersion") ? 1 : 0;
    if (*ferretdb || bson_iter_init_find(&it, &reply, "version")) {
        snprintf(version, vlen, "%s", BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL) : "");
    }
    bson_destroy(&reply);
    return 0;
}

static int layout_mongodb(mongoc_database_t *db, long tel_ttl, long alert_ttl, char *err,
                          size_t errlen)
{
    bson_t ts = BSON_INITIALIZER, sub;
    BSON_APPEND_DOCUMENT_BEGIN(&ts, "timeseries", &sub);
    BSON_APPEND_UTF8(&sub, "timeField", PW_F_TS);
    BSON_APPEND_UTF8(&sub, "metaField", PW_F_META);
    BSON_APPEND_UTF8(&sub, "granularity", "seconds");
    bson_append_document_end(&ts, &sub);
    BSON_APPEND_INT64(&ts, "expireAfterSeconds", tel_ttl);
    int rc = create_collection(db, PW_COLL_TELEMETRY, &ts, err, errlen);
    bson_destroy(&ts);
    if (rc || create_collection(db, PW_COLL_ALERTS, NULL, err, errlen) ||
        create_collection(db, PW_COLL_TOKENS, NULL, err, errlen)) {
        return -1;
    }
    long roll_tel = tel_ttl + PWC_ROLLUP_EXTRA_S, roll_alr = alert_ttl + PWC_ROLLUP_EXTRA_S;
    create_index(db, PW_COLL_TELEMETRY, PW_F_META "." PW_F_DEVICE "," PW_F_TS, 0);
    create_index(db, PW_COLL_ALERTS, PW_F_TS, alert_ttl);
    create_index(db, PW_COLL_TOKENS, PW_F_AT, PWC_TOKEN_TTL_S);
    create_index(db, PW_COLL_ROLLUP_READINGS, PW_F_START, roll_tel);
    create_index(db, PW_COLL_ROLLUP_ALERTS, PW_F_START, roll_alr);
    create_index(db, PW_COLL_SERIES_READINGS, PW_F_START, roll_tel);
    create_index(db, PW_COLL_DEVICE_DAY, PW_F_START, roll_tel > roll_alr ? roll_tel : roll_alr);
    return 0;
}

/* FerretDB has no TTL indexes: the sweep deletes by these fields. */
static int layout_ferretdb(mongoc_database_t *db, char *err, size_t errlen)
{
    if (create_collection(db, PW_COLL_TELEMETRY, NULL, err, errlen) ||
        create_collection(db, PW_COLL_ALERTS, NULL, err, errlen) ||
        create_collection(db, PW_COLL_TOKENS, NULL, err, errlen)) {
        return -1;
    }
    create_index(db, PW_COLL_TELEMETRY, PW_F_HOUR, 0);
    create_index(db, PW_COLL_ALERTS, PW_F_HOUR, 0);
    create_index(db, PW_COLL_TOKENS, PW_F_AT, 0);
    create_index(db, PW_COLL_ROLLUP_READINGS, PW_F_START, 0);
    create_index(db, PW_COLL_ROLLUP_ALERTS, PW_F_START, 0);
    create_index(db, PW_COLL_SERIES_READINGS, PW_F_START, 0);
    create_index(db, PW_COLL_DEVICE_DAY, PW_F_START, 0);
    return 0;
}

/* Indexes the views' queries use, on both servers. */
static int layout_common(mongoc_database_t *db, char *err, size_t errlen)
{
    static const char *const colls[] = {PW_COLL_ROLLUP_READINGS, PW_COLL_ROLLUP_ALERTS,
                                        PW_COLL_DEVICE_DAY,      PW_COLL_CENSUS,
                                        PW_COLL_PROGRESS,        PW_COLL_SERIES_READINGS};
    for (size_t i = 0; i < sizeof(colls) / sizeof(*colls); i++) {
        if (create_collection(db, colls[i], NULL, err, errlen)) {
            return -1;
        }
    }
    for (int i = 0; i < 2; i++) {
        const char *c = i == 0 ? PW_COLL_ROLLUP_READINGS : PW_COLL_ROLLUP_ALERTS;
        create_index(db, c, PW_F_DAY "," PW_F_RES, 0);
        create_index(db, c, PW_F_MONTH, 0);
    }
    create_index(db, PW_COLL_SERIES_READINGS, PW_F_SK, 0); /* the history views' one filter */
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
        if (rc == 0) {
            rc = layout_common(db, err, errlen);
        }
        mongoc_database_destroy(db);
    }
    mongoc_client_pool_push(s->pool, c);
    if (rc == 0) {
        pw_log_fields(PW_LOG_INFO, "store_ready",
                      json_pack("{s:s,s:s,s:s}", "server", s->ferretdb ? "ferretdb" : "mongodb",
                                "version", version, "db", s->db),
                      "storage layout ensured");
    }
    return rc;
}
