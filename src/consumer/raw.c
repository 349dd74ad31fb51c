/* raw: raw readings and alerts and their dedupe gate — the documents, the
 * gate inserts, the raw inserts of new tokens, and the restore of a raw
 * reading whose delivery crashed between its gate insert and its raw insert.
 * The same code runs on MongoDB and FerretDB (see store_int.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dedupe.h"
#include "pw_log.h"
#include "pw_schema.h"
#include "pw_time.h"
#include "store_int.h"

static void append_origin(const pwc_entry *e, bson_t *doc)
{
    char origin[PWC_ORIGIN_LEN];
    pwc_origin_format(e->topic, e->partition, e->offset, origin, sizeof(origin));
    BSON_APPEND_UTF8(doc, PW_F_ORIGIN, origin);
}

/* The sensor's original of a normalized id, only when normalization changed it. */
static void append_orig(bson_t *doc, const char *field, const char *orig)
{
    if (orig[0] != '\0') {
        BSON_APPEND_UTF8(doc, field, orig);
    }
}

/* Fields readings and alerts share, after _id, times and identity. */
static void append_common_tail(const pwc_entry *e, bson_t *doc)
{
    const pwc_record *r = e->rec;
    BSON_APPEND_UTF8(doc, PW_F_FIRMWARE, r->firmware);
    BSON_APPEND_DATE_TIME(doc, PW_F_RECEIVED, r->received_ms);
    BSON_APPEND_UTF8(doc, PW_F_CONSUMER, r->consumer);
    BSON_APPEND_UTF8(doc, PW_F_SOURCE, r->source);
    append_origin(e, doc);
}

void pwc_raw_reading_doc(const pwc_entry *e, bson_t *doc)
{
    const pwc_record *r = e->rec;
    bson_t meta;
    bson_init(doc);
    BSON_APPEND_UTF8(doc, PW_F_ID, r->token);
    BSON_APPEND_DATE_TIME(doc, PW_F_TS, r->ts_ms);
    BSON_APPEND_UTF8(doc, PW_F_DAY, r->day);
    BSON_APPEND_DATE_TIME(doc, PW_F_HOUR, r->hour_ms);
    BSON_APPEND_DOCUMENT_BEGIN(doc, PW_F_META, &meta);
    BSON_APPEND_UTF8(&meta, PW_F_DEVICE, r->device);
    BSON_APPEND_UTF8(&meta, PW_F_ZONE, r->zone);
    BSON_APPEND_UTF8(&meta, PW_F_TYPE, r->type);
    bson_append_document_end(doc, &meta);
    BSON_APPEND_UTF8(doc, PW_F_DEVICE, r->device);
    BSON_APPEND_UTF8(doc, PW_F_ZONE, r->zone);
    BSON_APPEND_UTF8(doc, PW_F_TYPE, r->type);
    BSON_APPEND_DOUBLE(doc, PW_F_VALUE, r->value);
    BSON_APPEND_UTF8(doc, PW_F_UNIT, r->unit);
    BSON_APPEND_DOUBLE(doc, PW_F_RAW_VALUE, r->raw_value);
    BSON_APPEND_UTF8(doc, PW_F_RAW_UNIT, r->raw_unit);
    append_orig(doc, PW_F_DEVICE_ORIG, r->device_orig);
    append_orig(doc, PW_F_ZONE_ORIG, r->zone_orig);
    append_orig(doc, PW_F_TYPE_ORIG, r->type_orig);
    append_common_tail(e, doc);
}

void pwc_raw_alert_doc(const pwc_entry *e, bson_t *doc)
{
    const pwc_record *r = e->rec;
    bson_init(doc);
    BSON_APPEND_UTF8(doc, PW_F_ID, r->token);
    BSON_APPEND_DATE_TIME(doc, PW_F_TS, r->ts_ms);
    BSON_APPEND_UTF8(doc, PW_F_DAY, r->day);
    BSON_APPEND_DATE_TIME(doc, PW_F_HOUR, r->hour_ms);
    BSON_APPEND_UTF8(doc, PW_F_DEVICE, r->device);
    BSON_APPEND_UTF8(doc, PW_F_ZONE, r->zone);
    BSON_APPEND_UTF8(doc, PW_F_SEVERITY, r->severity);
    BSON_APPEND_UTF8(doc, PW_F_CODE, r->code);
    BSON_APPEND_UTF8(doc, PW_F_MESSAGE, r->message);
    append_orig(doc, PW_F_DEVICE_ORIG, r->device_orig);
    append_orig(doc, PW_F_ZONE_ORIG, r->zone_orig);
    append_common_tail(e, doc);
}

/* ingest_tokens: {_id: token, origin, at: UTC hour of receipt}. */
static void token_gate_doc(const pwc_entry *e, bson_t *doc)
{
    int64_t at = e->rec->received_ms ? e->rec->received_ms : e->rec->ts_ms;
    bson_init(doc);
    BSON_APPEND_UTF8(doc, PW_F_ID, e->rec->token);
    append_origin(e, doc);
    BSON_APPEND_DATE_TIME(doc, PW_F_AT, pw_time_hour_start(at));
}

/* Indexes of the entries of one kind. */
static size_t select_kind(const pwc_entry *entries, size_t n, pwc_kind kind, size_t *out)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (entries[i].rec->kind == kind) {
            out[m++] = i;
        }
    }
    return m;
}

static void crash_if(const pwc_store *s, pwc_store_fault point)
{
    if (s->fault == point) {
        pw_log(PW_LOG_WARN, "test_fault", "PW_TEST_FAULT: exiting as if killed");
        _exit(137);
    }
}

/* Raw documents of the new tokens (sel: the n entries' readings). A
 * duplicate _id here (the document is there already, e.g. restored by
 * another delivery) is harmless. */
static int insert_new_readings(pwc_store *s, mongoc_database_t *db, pwc_entry *entries, size_t n,
                               size_t *sel, size_t nsel, const int *gate, char *err, size_t errlen)
{
    size_t m = 0;
    for (size_t i = 0; i < nsel; i++) {
        if (gate[sel[i]] == PWC_GATE_NEW) {
            sel[m++] = sel[i];
        }
    }
    int *state = calloc(n ? n : 1, sizeof(int));
    if (!state) {
        return -1;
    }
    int rc = pwc_insert_docs(s, db, PW_COLL_TELEMETRY, pwc_raw_reading_doc, entries, sel, m, state,
                             err, errlen);
    free(state);
    return rc;
}

int pwc_raw_insert(pwc_store *s, mongoc_database_t *db, pwc_entry *entries, size_t n, int *gate,
                   char *err, size_t errlen)
{
    size_t *sel = calloc(n ? n : 1, sizeof(size_t));
    if (!sel) {
        return -1;
    }
    size_t nalr = select_kind(entries, n, PWC_ALERT, sel);
    int rc = pwc_insert_docs(s, db, PW_COLL_ALERTS, pwc_raw_alert_doc, entries, sel, nalr, gate,
                             err, errlen);
    size_t ntel = select_kind(entries, n, PWC_READING, sel);
    if (rc == 0) {
        rc = pwc_insert_docs(s, db, PW_COLL_TOKENS, token_gate_doc, entries, sel, ntel, gate, err,
                             errlen);
    }
    if (rc == 0 && ntel > 0) {
        crash_if(s, PWC_FAULT_AFTER_GATE);
        rc = insert_new_readings(s, db, entries, n, sel, ntel, gate, err, errlen);
    }
    free(sel);
    return rc;
}

/* 1 when the raw reading of e is stored: {_id, meta.device, ts}, which
 * FerretDB pushes down and MongoDB's time-series index on meta and time
 * serves. -1 on a store error. */
static int reading_stored(pwc_store *s, mongoc_collection_t *coll, const pwc_entry *e, char *err,
                          size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, PW_F_ID, e->rec->token);
    BSON_APPEND_UTF8(&filter, PW_F_META "." PW_F_DEVICE, e->rec->device);
    BSON_APPEND_DATE_TIME(&filter, PW_F_TS, e->rec->ts_ms);
    pw_store_plan_check(s->plans, coll, &filter, "raw reading restore check", PW_QUERY_FILTERED);
    bson_t *opts = BCON_NEW("projection", "{", PW_F_ID, BCON_INT32(1), "}", "limit", BCON_INT64(1));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, opts, NULL);
    const bson_t *doc;
    int found = mongoc_cursor_next(cur, &doc) ? 1 : 0;
    bson_error_t e2;
    if (mongoc_cursor_error(cur, &e2)) {
        pwc_set_err(err, errlen, "raw reading restore check", &e2);
        found = -1;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(&filter);
    return found;
}

int pwc_raw_restore(pwc_store *s, mongoc_database_t *db, pwc_entry *entries, const size_t *idx,
                    size_t n, char *err, size_t errlen)
{
    if (n == 0) {
        return 0;
    }
    size_t *missing = malloc(n * sizeof(size_t));
    size_t max = 0;
    for (size_t i = 0; i < n; i++) {
        max = idx[i] > max ? idx[i] : max;
    }
    int *state = calloc(max + 1, sizeof(int));
    int rc = missing && state ? 0 : -1;
    mongoc_collection_t *coll = mongoc_database_get_collection(db, PW_COLL_TELEMETRY);
    size_t m = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (entries[idx[i]].rec->kind != PWC_READING) {
            continue;
        }
        int found = reading_stored(s, coll, &entries[idx[i]], err, errlen);
        if (found < 0) {
            rc = -1;
        } else if (!found) {
            missing[m++] = idx[i];
        }
    }
    mongoc_collection_destroy(coll);
    if (rc == 0 && m > 0) {
        rc = pwc_insert_docs(s, db, PW_COLL_TELEMETRY, pwc_raw_reading_doc, entries, missing, m,
                             state, err, errlen);
        if (rc == 0 && s->res) {
            s->res->restored += m;
        }
        pw_log(PW_LOG_INFO, "raw_restored",
               "%zu readings whose delivery stopped between gate and raw insert restored", m);
    }
    free(missing);
    free(state);
    return rc;
}
