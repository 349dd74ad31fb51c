/* pw_store: what both store clients (consumer, metrics) share on top of
 * mongo-c-driver.
 *
 * - The query-plan check: with checking on (PW_STORE_EXPLAIN=1), the first
 *   query of each shape (collection + filter fields and operators) is
 *   explained once and its plan logged as a "store_query_plan" line: whether
 *   the server serves the filter itself (FerretDB: filterPushdown; MongoDB: no
 *   COLLSCAN). A test reads these lines to prove that no query scans a
 *   collection silently. Reads of a whole collection are declared as such by
 *   their caller and logged as "whole".
 * - Packed state: a protobuf message stored as a BSON binary field of
 *   subtype 0x80 — a little-endian uint32 with the message's length, then
 *   the message deflated with zlib (subtype 0: the message as is).
 * - The client URI: PW_MONGO_URI_FILE or PW_MONGO_URI, with timeouts that fail
 *   fast when the store is down. */
#ifndef PW_STORE_H
#define PW_STORE_H

#include <mongoc/mongoc.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

/* Routes mongo-c-driver's log lines into the JSON log (pw_log); FerretDB's
 * missing sessions ("endSessions") are logged at debug. Call once in main
 * before mongoc_init. */
void pw_store_log_to_json(void);

/* Registry of the shapes already checked; thread-safe. */
typedef struct pw_store_plans pw_store_plans;

/* enabled = 0 makes every check a no-op. NULL on ENOMEM. */
pw_store_plans *pw_store_plans_new(int enabled);
void pw_store_plans_free(pw_store_plans *p);

typedef enum {
    PW_QUERY_FILTERED = 0, /* must be served by the server's pushdown / an index */
    PW_QUERY_WHOLE = 1,    /* reads the whole collection on purpose */
} pw_query_intent;

/* Explains `filter` on coll (as a find) the first time its shape is seen and
 * logs the plan. purpose names the call site ("bucket read", ...). Never
 * fails the caller: an explain error is logged. */
void pw_store_plan_check(pw_store_plans *p, mongoc_collection_t *coll, const bson_t *filter,
                         const char *purpose, pw_query_intent intent);

/* The shape of filter: "{f1,f2:$op}" (top-level fields in order, with the
 * operators of operator documents). Writes at most outlen bytes. */
void pw_store_filter_shape(const bson_t *filter, char *out, size_t outlen);

#define PW_STORE_SUBTYPE_DEFLATED 0x80
#define PW_STORE_PACKED_MAX (64u << 20) /* a packed message is never larger */

/* Appends m, packed and deflated, as BSON binary field `field`. 0, or -1
 * (ENOMEM, or larger than PW_STORE_PACKED_MAX). */
int pw_store_append_packed(bson_t *doc, const char *field, const ProtobufCMessage *m);

/* The message packed in binary field `field` of doc, unpacked with d; free it
 * with protobuf_c_message_free_unpacked. NULL when the field is absent, not
 * binary, does not inflate (or claims more than PW_STORE_PACKED_MAX) or does
 * not decode (*bad = 1 then; absent leaves *bad alone). */
ProtobufCMessage *pw_store_unpack(const bson_t *doc, const char *field,
                                  const ProtobufCMessageDescriptor *d, int *bad);

/* The UTF-8 string of field `field` of doc, or NULL when absent or not a string. */
const char *pw_store_str(const bson_t *doc, const char *field);

/* A versioned document's `hw` (-1 when absent) and `_v` (hw when absent). */
void pw_store_versions(const bson_t *doc, int64_t *hw, int64_t *v);

/* FNV-1a, 32 bits, of a NUL-terminated string: how a device id is mapped to
 * its census shard (and a hash for in-memory indexes keyed by device). */
uint32_t pw_store_fnv1a32(const char *s);

/* A parsed client URI from PW_MONGO_URI_FILE / PW_MONGO_URI (default
 * mongodb://127.0.0.1:27017) with serverSelectionTimeoutMS,
 * connectTimeoutMS and socketTimeoutMS set unless the URI sets them. The
 * caller destroys it. NULL with err (the password is never included). */
mongoc_uri_t *pw_store_uri_from_env(int server_selection_ms, int socket_ms, char *err,
                                    size_t errlen);

#endif
