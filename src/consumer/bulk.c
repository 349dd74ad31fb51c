/* bulk: the write path's store primitives — unordered bulk execution with
 * per-item duplicate flags, update batches of bounded size, inserts of built
 * documents, and point reads by _id (see store_int.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dedupe.h"
#include "pw_schema.h"
#include "store_int.h"

void pwc_set_err(char *err, size_t errlen, const char *what, const bson_error_t *e)
{
    snprintf(err, errlen, "%s: %s", what, e ? e->message : "failed");
}

/* Server codes that say "this document / value can never be written":
 * BadValue, TypeMismatch, InvalidLength, DollarPrefixedFieldName,
 * EmptyFieldName, BSONObjectTooLarge and its relatives, KeyTooLong,
 * InvalidBSON, document validation failure. */
int pwc_code_is_refusal(int64_t code)
{
    static const int64_t codes[] = {2,     14,    16, 52,  56,    10334, 17419,
                                    17420, 17280, 22, 121, 15974, 16837};
    for (size_t i = 0; i < sizeof(codes) / sizeof(*codes); i++) {
        if (codes[i] == code) {
            return 1;
        }
    }
    return 0;
}

int pwc_error_is_refusal(const bson_error_t *e)
{
    if (e->domain == MONGOC_ERROR_BSON) {
        return 1; /* the client refused to encode it (too large, invalid) */
    }
    if (e->domain == MONGOC_ERROR_COMMAND && e->code == MONGOC_ERROR_COMMAND_INVALID_ARG) {
        return 1; /* e.g. keys the client refuses to send */
    }
    return e->domain == MONGOC_ERROR_SERVER && pwc_code_is_refusal(e->code);
}

void pwc_note_refusal(pwc_store *s, const pwc_bulk_result *r)
{
    if (r->refused && !s->refused) {
        s->refused = 1;
        snprintf(s->refused_msg, sizeof(s->refused_msg), "%s", r->refused_msg);
    }
}

static void note_refused(pwc_bulk_result *r, int64_t code, const char *msg)
{
    if (!r->refused) {
        r->refused = 1;
        int n = snprintf(r->refused_msg, sizeof(r->refused_msg), "code %lld: ", (long long)code);
        size_t off = n > 0 && (size_t)n < sizeof(r->refused_msg) ? (size_t)n : 0;
        snprintf(r->refused_msg + off, sizeof(r->refused_msg) - off, "%.150s",
                 msg ? msg : "refused");
    }
}

static int64_t reply_int(const bson_t *reply, const char *field)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, reply, field) ? bson_iter_as_int64(&it) : 0;
}

/* The guard of the local PostgreSQL (scripts/stack/postgres/store.sql)
 * refuses an update that does not raise _v; FerretDB reports it as a failed
 * command with the server's message. */
static int is_stale_write(const char *msg)
{
    return msg && strstr(msg, "stale write refused") != NULL;
}

static void scan_write_errors(const bson_t *reply, pwc_bulk_result *r, size_t nops)
{
    bson_iter_t it, arr;
    if (!bson_iter_init_find(&it, reply, "writeErrors") || !bson_iter_recurse(&it, &arr)) {
        return;
    }
    while (bson_iter_next(&arr)) {
        bson_iter_t f;
        bson_t doc;
        const uint8_t *data;
        uint32_t len;
        bson_iter_document(&arr, &len, &data);
        if (!bson_init_static(&doc, data, len)) {
            continue;
        }
        r->nerrors++;
        int64_t code = bson_iter_init_find(&f, &doc, "code") ? bson_iter_as_int64(&f) : 0;
        int64_t idx = bson_iter_init_find(&f, &doc, "index") ? bson_iter_as_int64(&f) : -1;
        const char *msg = bson_iter_init_find(&f, &doc, "errmsg") && BSON_ITER_HOLDS_UTF8(&f)
                              ? bson_iter_utf8(&f, NULL)
                              : NULL;
        if (is_stale_write(msg)) {
            r->conflict = 1;
        } else if (code != PWC_E_DUPLICATE) {
            r->other_error = 1;
            if (pwc_code_is_refusal(code)) {
                note_refused(r, code, msg);
            }
        } else if (r->dup && idx >= 0 && (size_t)idx < nops) {
            r->dup[idx] = 1;
        }
    }
}

int pwc_bulk_exec(mongoc_bulk_operation_t *bulk, pwc_bulk_result *r, size_t nops, char *err,
                  size_t errlen)
{
    bson_t reply;
    bson_error_t e;
    uint32_t ok = mongoc_bulk_operation_execute(bulk, &reply, &e);
    mongoc_bulk_operation_destroy(bulk);
    r->n_inserted = reply_int(&reply, "nInserted");
    r->n_matched = reply_int(&reply, "nMatched");
    r->n_upserted = reply_int(&reply, "nUpserted");
    size_t before = r->nerrors;
    scan_write_errors(&reply, r, nops);
    bson_destroy(&reply);
    if (!ok && r->nerrors == before) {
        r->conflict |= is_stale_write(e.message);
        if (!r->conflict && pwc_error_is_refusal(&e)) {
            note_refused(r, e.code, e.message);
        }
        pwc_set_err(err, errlen, "bulk write", &e);
        return -1;
    }
    r->ok = 1;
    return 0;
}

mongoc_bulk_operation_t *pwc_bulk_new(mongoc_collection_t *coll)
{
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&opts, "ordered", false);
    mongoc_bulk_operation_t *b = mongoc_collection_create_bulk_operation_with_opts(coll, &opts);
    bson_destroy(&opts);
    return b;
}

void pwc_ub_init(pwc_update_batch *u, mongoc_collection_t *coll, char *err, size_t errlen)
{
    memset(u, 0, sizeof(*u));
    u->coll = coll;
    u->err = err;
    u->errlen = errlen;
}

static void ub_flush(pwc_update_batch *u)
{
    if (!u->bulk) {
        return;
    }
    if (u->failed) {
        mongoc_bulk_operation_destroy(u->bulk);
    } else {
        pwc_bulk_result r = {0};
        if (pwc_bulk_exec(u->bulk, &r, u->nops, u->err, u->errlen) != 0) {
            u->failed = 1;
        }
        u->total.n_matched += r.n_matched;
        u->total.n_upserted += r.n_upserted;
        u->total.n_inserted += r.n_inserted;
        u->total.nerrors += r.nerrors;
        u->total.other_error |= r.other_error;
        u->total.conflict |= r.conflict;
        if (r.refused && !u->total.refused) {
            u->total.refused = 1;
            memcpy(u->total.refused_msg, r.refused_msg, sizeof(r.refused_msg));
        }
    }
    u->bulk = NULL;
    u->nops = 0;
}

mongoc_bulk_operation_t *pwc_ub_next(pwc_update_batch *u)
{
    if (u->nops == PWC_UPDATES_PER_COMMAND) {
        ub_flush(u);
    }
    if (!u->bulk) {
        u->bulk = pwc_bulk_new(u->coll);
    }
    u->nops++;
    return u->bulk;
}

int pwc_ub_finish(pwc_update_batch *u)
{
    ub_flush(u);
    return u->failed ? -1 : 0;
}

/* Test fault "refuse_device:<id>": that device's documents carry a field
 * name the store refuses, as a document it can never accept would. */
static void add_insert(const pwc_store *s, const char *coll_name, mongoc_bulk_operation_t *bulk,
                       const pwc_entry *e, bson_t *doc)
{
    if (s->refuse_device[0] == '\0' || strcmp(e->rec->device, s->refuse_device) != 0 ||
        (s->refuse_raw_only && strcmp(coll_name, PW_COLL_TELEMETRY) != 0)) {
        mongoc_bulk_operation_insert_with_opts(bulk, doc, NULL, NULL);
        return;
    }
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&opts, "validate", false);
    BSON_APPEND_BOOL(doc, "$refused", true);
    mongoc_bulk_operation_insert_with_opts(bulk, doc, &opts, NULL);
    bson_destroy(&opts);
}

int pwc_insert_docs(pwc_store *s, mongoc_database_t *db, const char *coll_name,
                    pwc_doc_builder build, const pwc_entry *entries, const size_t *sel, size_t nsel,
                    int *state, char *err, size_t errlen)
{
    if (nsel == 0) {
        return 0;
    }
    mongoc_collection_t *coll = mongoc_database_get_collection(db, coll_name);
    mongoc_bulk_operation_t *bulk = pwc_bulk_new(coll);
    for (size_t i = 0; i < nsel; i++) {
        bson_t doc;
        build(&entries[sel[i]], &doc);
        add_insert(s, coll_name, bulk, &entries[sel[i]], &doc);
        bson_destroy(&doc);
    }
    pwc_bulk_result r = {0};
    r.dup = calloc(nsel, sizeof(int));
    int rc = r.dup ? pwc_bulk_exec(bulk, &r, nsel, err, errlen) : -1;
    if (!r.dup) {
        mongoc_bulk_operation_destroy(bulk);
        snprintf(err, errlen, "out of memory");
    }
    pwc_note_refusal(s, &r);
    if (rc == 0 && (r.other_error || r.conflict)) {
        snprintf(err, errlen, "insert into %s: %s", coll_name,
                 r.refused ? r.refused_msg : "write error other than duplicate key");
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < nsel; i++) {
        state[sel[i]] = r.dup[i] ? PWC_GATE_DUP : PWC_GATE_NEW;
    }
    free(r.dup);
    mongoc_collection_destroy(coll);
    return rc;
}

static int find_one_id(pwc_store *s, mongoc_collection_t *coll, const char *id, const bson_t *opts,
                       pwc_found_fn fn, void *ctx, const char *purpose, char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, PW_F_ID, id);
    pw_store_plan_check(s->plans, coll, &filter, purpose, PW_QUERY_FILTERED);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, opts, NULL);
    const bson_t *doc;
    while (mongoc_cursor_next(cur, &doc)) {
        fn(ctx, id, doc);
    }
    bson_error_t e;
    int rc = 0;
    if (mongoc_cursor_error(cur, &e)) {
        pwc_set_err(err, errlen, purpose, &e);
        rc = -1;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    return rc;
}

int pwc_find_ids(pwc_store *s, mongoc_database_t *db, const char *coll_name, const char *const *ids,
                 size_t n, const char *field, pwc_found_fn fn, void *ctx, const char *purpose,
                 char *err, size_t errlen)
{
    if (n == 0) {
        return 0;
    }
    mongoc_collection_t *coll = mongoc_database_get_collection(db, coll_name);
    bson_t opts = BSON_INITIALIZER, proj;
    if (field) {
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
        BSON_APPEND_INT32(&proj, field, 1);
        bson_append_document_end(&opts, &proj);
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = find_one_id(s, coll, ids[i], &opts, fn, ctx, purpose, err, errlen);
    }
    bson_destroy(&opts);
    mongoc_collection_destroy(coll);
    return rc;
}
