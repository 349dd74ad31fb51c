/* mx_store: mongoc client pool and document field readers. */
#include "mx_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_log.h"

struct mx_store {
    mongoc_client_pool_t *pool;
    pw_store_plans *plans;
    char *db;
};

mx_store *mx_store_new(const char *db, unsigned pool_max, int explain, char *err, size_t errlen)
{
    bson_error_t error;
    /* fail fast instead of the driver's 30 s default when the store is down */
    mongoc_uri_t *uri = pw_store_uri_from_env(3000, 30000, err, errlen);
    if (uri == NULL) {
        return NULL;
    }
    if (!mongoc_uri_has_option(uri, MONGOC_URI_APPNAME)) {
        mongoc_uri_set_appname(uri, "plantwatch-metrics");
    }
    mx_store *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->db = strdup(db)) == NULL ||
        (s->plans = pw_store_plans_new(explain)) == NULL) {
        if (s != NULL) {
            free(s->db);
        }
        free(s);
        mongoc_uri_destroy(uri);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->pool = mongoc_client_pool_new_with_error(uri, &error);
    mongoc_uri_destroy(uri);
    if (s->pool == NULL) {
        snprintf(err, errlen, "cannot create the client pool: %s", error.message);
        pw_store_plans_free(s->plans);
        free(s->db);
        free(s);
        return NULL;
    }
    mongoc_client_pool_set_error_api(s->pool, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_pool_max_size(s->pool, pool_max ? pool_max : 16);
    return s;
}

void mx_store_free(mx_store *s)
{
    if (s == NULL) {
        return;
    }
    mongoc_client_pool_destroy(s->pool);
    pw_store_plans_free(s->plans);
    free(s->db);
    free(s);
}

mongoc_client_t *mx_store_pop(mx_store *s)
{
    return mongoc_client_pool_pop(s->pool);
}

void mx_store_push(mx_store *s, mongoc_client_t *c)
{
    if (c != NULL) {
        mongoc_client_pool_push(s->pool, c);
    }
}

mongoc_collection_t *mx_store_collection(mx_store *s, mongoc_client_t *c, const char *name)
{
    return mongoc_client_get_collection(c, s->db, name);
}

void mx_store_check(mx_store *s, mongoc_collection_t *coll, const bson_t *filter,
                    const char *purpose, int whole)
{
    pw_store_plan_check(s->plans, coll, filter, purpose,
                        whole ? PW_QUERY_WHOLE : PW_QUERY_FILTERED);
}

int mx_store_ping(void *store, char *why, size_t whylen)
{
    mx_store *s = store;
    mongoc_client_t *c = mx_store_pop(s);
    bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
    bson_error_t error;
    int ok = mongoc_client_command_simple(c, s->db, cmd, NULL, NULL, &error);
    bson_destroy(cmd);
    mx_store_push(s, c);
    if (!ok) {
        snprintf(why, whylen, "store unreachable: %s", error.message);
    }
    return ok ? 1 : 0;
}

const char *mx_bson_str(const bson_t *doc, const char *key, const char *def)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it)) {
        return bson_iter_utf8(&it, NULL);
    }
    return def;
}

int mx_bson_has_number(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_NUMBER(&it);
}

int64_t mx_bson_int(const bson_t *doc, const char *key, int64_t def)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_NUMBER(&it)) {
        return bson_iter_as_int64(&it);
    }
    return def;
}

double mx_bson_double(const bson_t *doc, const char *key, double def)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_NUMBER(&it)) {
        return bson_iter_as_double(&it);
    }
    return def;
}

int64_t mx_bson_time_ms(const bson_t *doc, const char *key, int64_t def)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, key)) {
        return def;
    }
    if (BSON_ITER_HOLDS_DATE_TIME(&it)) {
        return bson_iter_date_time(&it);
    }
    if (BSON_ITER_HOLDS_INT64(&it) || BSON_ITER_HOLDS_INT32(&it)) {
        return bson_iter_as_int64(&it);
    }
    return def;
}
