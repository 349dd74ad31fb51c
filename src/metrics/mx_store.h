/* mx_store: the metrics service's read access to the store — a thread-safe
 * mongoc client pool, collection handles, the query-plan check of every
 * query shape (pw_store.h), the store deadline of a computation (maxTimeMS
 * on every query, a socket timeout behind it), the readiness ping on its own
 * client with a short deadline, and typed field readers for the consumer's
 * documents (the consumer creates the indexes the views rely on). */
#ifndef MX_STORE_H
#define MX_STORE_H

#include <mongoc/mongoc.h>
#include <stddef.h>
#include <stdint.h>

#include "pw_store.h"

typedef struct mx_store mx_store;

/* How a view's store access fails (views return these). */
#define MX_STORE_FAILED (-1)  /* store unreachable, or it answered an error */
#define MX_STORE_TIMEOUT (-2) /* the computation's store deadline passed */

typedef struct {
    unsigned pool_max; /* concurrent clients of the pool (0: 16) */
    int explain;       /* 1: the plan check is on */
    long timeout_ms;   /* deadline of one computation's store queries */
    long ready_ms;     /* deadline of the readiness ping */
} mx_store_options;

/* Opens a pool for the store of PW_MONGO_URI_FILE / PW_MONGO_URI, database
 * db (copied), and the readiness client. The pool's server selection timeout
 * defaults to timeout_ms and its socket timeout to timeout_ms + 1000 (a
 * backstop for a server that ignores maxTimeMS) unless the URI sets them; the
 * readiness client always uses ready_ms for all three timeouts. Nothing
 * connects yet. NULL with err. */
mx_store *mx_store_new(const char *db, const mx_store_options *o, char *err, size_t errlen);
void mx_store_free(mx_store *s);

/* The monotonic deadline (pw_monotonic_us) of a computation starting now. */
int64_t mx_store_deadline(const mx_store *s);

/* Appends maxTimeMS (the whole milliseconds left until deadline_us, at least
 * 1) to a find's opts. 0, or MX_STORE_TIMEOUT with err when the deadline has
 * passed (the query must not be sent). deadline_us 0: no limit. */
int mx_store_limit(const mx_store *s, bson_t *opts, int64_t deadline_us, char *err, size_t errlen);

/* A failed query's answer: MX_STORE_TIMEOUT when the server's time limit
 * (maxTimeMS, code 50) hit, or a socket failed once the deadline had passed
 * (the socket timeout behind maxTimeMS); else MX_STORE_FAILED (e.g. no
 * server could be selected); err says which. */
int mx_store_failure(const mx_store *s, const bson_error_t *e, int64_t deadline_us, char *err,
                     size_t errlen);

/* A client for the calling thread; give it back with mx_store_push. */
mongoc_client_t *mx_store_pop(mx_store *s);
void mx_store_push(mx_store *s, mongoc_client_t *c);
/* Collection of the configured database; caller destroys it. */
mongoc_collection_t *mx_store_collection(mx_store *s, mongoc_client_t *c, const char *name);

/* Checks the plan of filter on coll once per shape (see pw_store.h). */
void mx_store_check(mx_store *s, mongoc_collection_t *coll, const bson_t *filter,
                    const char *purpose, int whole);

/* 1 when the store answers a ping within ready_ms, else 0 with a reason
 * (readiness). Pings run one at a time on the readiness client; a call that
 * finds one running answers that ping's predecessor's result at once
 * instead of waiting. */
int mx_store_ping(void *store, char *why, size_t whylen);

/* Field readers: the value of key in doc converted, or def when absent or of
 * another type. Numbers accept int32, int64 and double; times accept a BSON
 * date or an integer of epoch milliseconds. */
const char *mx_bson_str(const bson_t *doc, const char *key, const char *def);
int64_t mx_bson_int(const bson_t *doc, const char *key, int64_t def);
double mx_bson_double(const bson_t *doc, const char *key, double def);
int mx_bson_has_number(const bson_t *doc, const char *key);
int64_t mx_bson_time_ms(const bson_t *doc, const char *key, int64_t def);

#endif
