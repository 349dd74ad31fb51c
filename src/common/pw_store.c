/* pw_store: owns the query-plan check, the packed-state field and the store
 * client URI shared by the consumer and the metrics service (see pw_store.h). */
#include "pw_store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "pw_env.h"
#include "pw_log.h"
#include "pw_schema.h"

#define PW_PLANS_MAX 256
#define PW_SHAPE_LEN 256

struct pw_store_plans {
    pthread_mutex_t lock;
    int enabled;
    size_t n;
    char seen[PW_PLANS_MAX][PW_SHAPE_LEN];
};

static void store_log(mongoc_log_level_t level, const char *domain, const char *message, void *data)
{
    (void)data;
    pw_log_level l = level <= MONGOC_LOG_LEVEL_CRITICAL  ? PW_LOG_ERROR
                     : level == MONGOC_LOG_LEVEL_WARNING ? PW_LOG_WARN
                     : level <= MONGOC_LOG_LEVEL_INFO    ? PW_LOG_INFO
                                                         : PW_LOG_DEBUG;
    if (strstr(message, "endSessions")) { /* FerretDB 1.x has no sessions: noise */
        l = PW_LOG_DEBUG;
    }
    if (pw_log_enabled(l)) {
        pw_log(l, "mongoc", "%s: %s", domain, message);
    }
}

void pw_store_log_to_json(void)
{
    mongoc_log_set_handler(store_log, NULL);
}

pw_store_plans *pw_store_plans_new(int enabled)
{
    pw_store_plans *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    p->enabled = enabled;
    return p;
}

void pw_store_plans_free(pw_store_plans *p)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static void shape_append(char *out, size_t outlen, size_t *len, const char *s)
{
    int n = snprintf(out + *len, outlen - *len, "%s", s);
    if (n > 0) {
        *len += (size_t)n < outlen - *len ? (size_t)n : outlen - *len - 1;
    }
}

void pw_store_filter_shape(const bson_t *filter, char *out, size_t outlen)
{
    size_t len = 0;
    bson_iter_t it, sub;
    out[0] = '\0';
    shape_append(out, outlen, &len, "{");
    int first = 1;
    if (filter != NULL && bson_iter_init(&it, filter)) {
        while (bson_iter_next(&it)) {
            shape_append(out, outlen, &len, first ? "" : ",");
            first = 0;
            shape_append(out, outlen, &len, bson_iter_key(&it));
            if (!BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &sub)) {
                continue;
            }
            while (bson_iter_next(&sub)) {
                if (bson_iter_key(&sub)[0] == '$') {
                    shape_append(out, outlen, &len, ":");
                    shape_append(out, outlen, &len, bson_iter_key(&sub));
                }
            }
        }
    }
    shape_append(out, outlen, &len, "}");
}

/* 1 the first time key is seen (and remembers it), else 0. */
static int plans_first_time(pw_store_plans *p, const char *key)
{
    int first = 1;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n && first; i++) {
        if (strcmp(p->seen[i], key) == 0) {
            first = 0;
        }
    }
    if (first && p->n < PW_PLANS_MAX) {
        snprintf(p->seen[p->n++], PW_SHAPE_LEN, "%s", key);
    }
    pthread_mutex_unlock(&p->lock);
    return first;
}

/* FerretDB answers filterPushdown; MongoDB a plan whose stages name COLLSCAN
 * when no index serves the filter. 1 served, 0 scanned, -1 unknown. */
static int plan_served(const bson_t *reply)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, reply, "filterPushdown") && BSON_ITER_HOLDS_BOOL(&it)) {
        return bson_iter_bool(&it) ? 1 : 0;
    }
    if (!bson_iter_init_find(&it, reply, "queryPlanner")) {
        return -1;
    }
    char *json = bson_as_canonical_extended_json(reply, NULL);
    int served = json != NULL && strstr(json, "COLLSCAN") == NULL ? 1 : 0;
    bson_free(json);
    return served;
}

void pw_store_plan_check(pw_store_plans *p, mongoc_collection_t *coll, const bson_t *filter,
                         const char *purpose, pw_query_intent intent)
{
    if (p == NULL || !p->enabled) {
        return;
    }
    char shape[PW_SHAPE_LEN - 64], key[PW_SHAPE_LEN];
    const char *name = mongoc_collection_get_name(coll);
    pw_store_filter_shape(filter, shape, sizeof(shape));
    snprintf(key, sizeof(key), "%s %s", name, shape);
    if (!plans_first_time(p, key)) {
        return;
    }
    bson_t cmd = BSON_INITIALIZER, find, reply;
    bson_error_t e;
    BSON_APPEND_DOCUMENT_BEGIN(&cmd, "explain", &find);
    BSON_APPEND_UTF8(&find, "find", name);
    if (filter != NULL) {
        BSON_APPEND_DOCUMENT(&find, "filter", filter);
    }
    bson_append_document_end(&cmd, &find);
    BSON_APPEND_UTF8(&cmd, "verbosity", "queryPlanner");
    bool ok = mongoc_collection_command_simple(coll, &cmd, NULL, &reply, &e);
    int served = ok ? plan_served(&reply) : -1;
    bson_destroy(&reply);
    bson_destroy(&cmd);
    int whole = intent == PW_QUERY_WHOLE;
    pw_log_level level = (served == 1 || whole) ? PW_LOG_INFO : PW_LOG_WARN;
    pw_log_fields(level, "store_query_plan",
                  json_pack("{s:s,s:s,s:s,s:s,s:b}", "collection", name, "shape", shape, "purpose",
                            purpose, "plan",
                            served == 1   ? "served"
                            : served == 0 ? "scan"
                                          : "unknown",
                            "whole", whole),
                  "%s %s (%s): %s", name, shape, purpose,
                  !ok           ? e.message
                  : served == 1 ? "served by the server's filter"
                  : whole       ? "reads the whole collection by design"
                                : "SCANS the collection");
}

int pw_store_append_packed(bson_t *doc, const char *field, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    if (len > PW_STORE_PACKED_MAX) {
        return -1;
    }
    uLongf zlen = compressBound((uLong)len);
    uint8_t *raw = malloc(len ? len : 1), *out = malloc(4 + zlen);
    int rc = raw && out ? 0 : -1;
    if (rc == 0) {
        protobuf_c_message_pack(m, raw);
        for (int i = 0; i < 4; i++) {
            out[i] = (uint8_t)(len >> (8 * i));
        }
        rc = compress2(out + 4, &zlen, raw, (uLong)len, 1) == Z_OK ? 0 : -1;
    }
    if (rc == 0 &&
        !bson_append_binary(doc, field, -1, PW_STORE_SUBTYPE_DEFLATED, out, (uint32_t)(4 + zlen))) {
        rc = -1;
    }
    free(raw);
    free(out);
    return rc;
}

/* The inflated bytes of a deflated packed field (caller frees), or NULL. */
static uint8_t *inflate_packed(const uint8_t *data, uint32_t len, size_t *outlen)
{
    if (len < 4) {
        return NULL;
    }
    uLongf n =
        (uLongf)data[0] | (uLongf)data[1] << 8 | (uLongf)data[2] << 16 | (uLongf)data[3] << 24;
    if (n > PW_STORE_PACKED_MAX) {
        return NULL;
    }
    /* one byte more than stated: a stream that inflates to more is caught
     * (zlib cannot tell with an output buffer of 0 bytes) */
    uint8_t *out = malloc(n + 1);
    uLongf got = n + 1;
    if (out == NULL || uncompress(out, &got, data + 4, len - 4) != Z_OK || got != n) {
        free(out);
        return NULL;
    }
    *outlen = n;
    return out;
}

ProtobufCMessage *pw_store_unpack(const bson_t *doc, const char *field,
                                  const ProtobufCMessageDescriptor *d, int *bad)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, field)) {
        return NULL;
    }
    if (!BSON_ITER_HOLDS_BINARY(&it)) {
        *bad = 1;
        return NULL;
    }
    bson_subtype_t st;
    uint32_t len = 0;
    const uint8_t *data = NULL;
    bson_iter_binary(&it, &st, &len, &data);
    if (st != PW_STORE_SUBTYPE_DEFLATED) {
        ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, data);
        *bad |= m == NULL;
        return m;
    }
    size_t n = 0;
    uint8_t *raw = inflate_packed(data, len, &n);
    ProtobufCMessage *m = raw ? protobuf_c_message_unpack(d, NULL, n, raw) : NULL;
    free(raw);
    *bad |= m == NULL;
    return m;
}

const char *pw_store_str(const bson_t *doc, const char *field)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, field) && BSON_ITER_HOLDS_UTF8(&it)) {
        return bson_iter_utf8(&it, NULL);
    }
    return NULL;
}

void pw_store_versions(const bson_t *doc, int64_t *hw, int64_t *v)
{
    bson_iter_t it;
    *hw = bson_iter_init_find(&it, doc, PW_F_HW) ? bson_iter_as_int64(&it) : -1;
    *v = bson_iter_init_find(&it, doc, PW_F_VERSION) ? bson_iter_as_int64(&it) : *hw;
}

uint32_t pw_store_fnv1a32(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 16777619u;
    }
    return h;
}

static void uri_default_int(mongoc_uri_t *uri, const char *option, int value)
{
    if (!mongoc_uri_has_option(uri, option)) {
        mongoc_uri_set_option_as_int32(uri, option, value);
    }
}

mongoc_uri_t *pw_store_uri_from_env(int server_selection_ms, int socket_ms, char *err,
                                    size_t errlen)
{
    char *s = pw_env_secret("PW_MONGO_URI");
    if (s == NULL && getenv("PW_MONGO_URI_FILE") != NULL && getenv("PW_MONGO_URI_FILE")[0]) {
        snprintf(err, errlen, "PW_MONGO_URI_FILE: cannot read %s", getenv("PW_MONGO_URI_FILE"));
        return NULL;
    }
    bson_error_t e;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(s ? s : "mongodb://127.0.0.1:27017", &e);
    if (s != NULL) {
        memset(s, 0, strlen(s));
        free(s);
    }
    if (uri == NULL) {
        snprintf(err, errlen, "PW_MONGO_URI is not a valid MongoDB URI");
        return NULL;
    }
    uri_default_int(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, server_selection_ms);
    uri_default_int(uri, MONGOC_URI_CONNECTTIMEOUTMS, 2000);
    uri_default_int(uri, MONGOC_URI_SOCKETTIMEOUTMS, socket_ms);
    return uri;
}
