/* mx_store: the metrics service's read access to the store — a thread-safe
 * mongoc client pool, collection handles, the query-plan check of every
 * query shape (pw_store.h), the readiness ping, and typed field readers for
 * the consumer's documents (the consumer creates the indexes the views rely
 * on). */
#ifndef MX_STORE_H
#define MX_STORE_H

#include <mongoc/mongoc.h>
#include <stddef.h>
#include <stdint.h>

#include "pw_store.h"

typedef struct mx_store mx_store;

/* Opens a pool for the store of PW_MONGO_URI_FILE / PW_MONGO_URI, database
 * db (copied); pool_max bounds concurrent clients; explain turns the plan
 * check on. NULL with err. */
mx_store *mx_store_new(const char *db, unsigned pool_max, int explain, char *err, size_t errlen);
void mx_store_free(mx_store *s);

/* A client for the calling thread; give it back with mx_store_push. */
mongoc_client_t *mx_store_pop(mx_store *s);
void mx_store_push(mx_store *s, mongoc_client_t *c);
/* Collection of the configured database; caller destroys it. */
mongoc_collection_t *mx_store_collection(mx_store *s, mongoc_client_t *c, const char *name);

/* Checks the plan of filter on coll once per shape (see pw_store.h). */
void mx_store_check(mx_store *s, mongoc_collection_t *coll, const bson_t *filter,
                    const char *purpose, int whole);

/* 1 when the store answers a ping, else 0 with a reason (readiness). */
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
