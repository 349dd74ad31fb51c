/* mx_store: mongoc client pool, store deadlines, the readiness client and
 * document field readers. */
#include "mx_store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_log.h"
#include "pw_time.h"

struct mx_store {
    mongoc_client_pool_t *pool;
    pw_store_plans *plans;
    char *db;
    long timeout_ms;
    mongoc_client_t *probe; /* readiness pings only, under probe_mu */
    pthread_mutex_t probe_mu;
    atomic_int probe_ok; /* result of the last ping */
};

/* The readiness client: every timeout ready_ms, whatever the URI says. */
static mongoc_client_t *mx_store_probe_new(long ready_ms, char *err, size_t errlen)
{
    mongoc_uri_t *uri = pw_store_uri_from_env((int)ready_ms, (int)ready_ms, err, errlen);
    if (uri == NULL) {
        return NULL;
    }
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, (int32_t)ready_ms);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, (int32_t)ready_ms);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, (int32_t)ready_ms);
    /* no extra check of an idle connection before the ping (a single-threaded
     * client's default after 5 s): it would be a second wait of ready_ms */
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETCHECKINTERVALMS, INT32_MAX);
    mongoc_uri_set_appname(uri, "plantwatch-metrics-probe");
    bson_error_t error;
    mongoc_client_t *c = mongoc_client_new_from_uri_with_error(uri, &error);
    mongoc_uri_destroy(uri);
    if (c == NULL) {
        snprintf(err, errlen, "cannot create the readiness client: %s", error.message);
        return NULL;
    }
    mongoc_client_set_error_api(c, MONGOC_ERROR_API_VERSION_2);
    return c;
}

static mongoc_client_pool_t *mx_store_pool_new(const mx_store_options *o, char *err, size_t errlen)
{
    bson_error_t error;
    /* fail within the deadline instead of the driver's 30 s default when the store is down */
    mongoc_uri_t *uri =
        pw_store_uri_from_env((int)o->timeout_ms, (int)o->timeout_ms + 1000, err, errlen);
    if (uri == NULL) {
        return NULL;
    }
    if (!mongoc_uri_has_option(uri, MONGOC_URI_APPNAME)) {
        mongoc_uri_set_appname(uri, "plantwatch-metrics");
    }
    mongoc_client_pool_t *pool = mongoc_client_pool_new_with_error(uri, &error);
    mongoc_uri_destroy(uri);
    if (pool == NULL) {
        snprintf(err, errlen, "cannot create the client pool: %s", error.message);
        return NULL;
    }
    mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_pool_max_size(pool, o->pool_max ? o->pool_max : 16);
    return pool;
}

mx_store *mx_store_new(const char *db, const mx_store_options *o, char *err, size_t errlen)
{
    mx_store *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->db = strdup(db)) == NULL ||
        (s->plans = pw_store_plans_new(o->explain)) == NULL) {
        if (s != NULL) {
            free(s->db);
        }
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->timeout_ms = o->timeout_ms;
    pthread_mutex_init(&s->probe_mu, NULL);
    atomic_init(&s->probe_ok, 0);
    if ((s->pool = mx_store_pool_new(o, err, errlen)) == NULL ||
        (s->probe = mx_store_probe_new(o->ready_ms, err, errlen)) == NULL) {
        mx_store_free(s);
        return NULL;
    }
    return s;
}

void mx_store_free(mx_store *s)
{
    if (s == NULL) {
        return;
    }
    if (s->probe != NULL) {
        mongoc_client_destroy(s->probe);
    }
    if (s->pool != NULL) {
        mongoc_client_pool_destroy(s->pool);
    }
    pthread_mutex_destroy(&s->probe_mu);
    pw_store_plans_free(s->plans);
    free(s->db);
    free(s);
}

int64_t mx_store_deadline(const mx_store *s)
{
    return pw_monotonic_us() + (int64_t)s->timeout_ms * 1000;
}

int mx_store_limit(const mx_store *s, bson_t *opts, int64_t deadline_us, char *err, size_t errlen)
{
    if (deadline_us == 0) {
        return 0;
    }
    int64_t left_ms = (deadline_us - pw_monotonic_us()) / 1000;
    if (left_ms <= 0) {
        snprintf(err, errlen, "store queries exceeded their deadline of %ld ms", s->timeout_ms);
        return MX_STORE_TIMEOUT;
    }
    BSON_APPEND_INT64(opts, "maxTimeMS", left_ms);
    return 0;
}

/* MongoDB's MaxTimeMSExpired */
#define MX_SERVER_TIME_LIMIT 50

int mx_store_failure(const mx_store *s, const bson_error_t *e, int64_t deadline_us, char *err,
                     size_t errlen)
{
    int server_limit = e->domain == MONGOC_ERROR_SERVER && e->code == MX_SERVER_TIME_LIMIT;
    int socket_timeout =
        e->domain == MONGOC_ERROR_STREAM && deadline_us != 0 && pw_monotonic_us() >= deadline_us;
    if (server_limit || socket_timeout) {
        snprintf(err, errlen, "store queries exceeded their deadline of %ld ms (%s)", s->timeout_ms,
                 e->message);
        return MX_STORE_TIMEOUT;
    }
    snprintf(err, errlen, "store query failed: %s", e->message);
    return MX_STORE_FAILED;
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
    if (pthread_mutex_trylock(&s->probe_mu) != 0) {
        int ok = atomic_load(&s->probe_ok);
        if (!ok) {
            snprintf(why, whylen, "store unreachable at the last readiness check");
        }
        return ok;
    }
    bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
    bson_error_t error;
    int ok = mongoc_client_command_simple(s->probe, s->db, cmd, NULL, NULL, &error) ? 1 : 0;
    bson_destroy(cmd);
    atomic_store(&s->probe_ok, ok);
    pthread_mutex_unlock(&s->probe_mu);
    if (!ok) {
        snprintf(why, whylen, "store unreachable: %s", error.message);
    }
    return ok;
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
