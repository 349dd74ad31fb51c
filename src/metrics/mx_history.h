/* mx_history: the history queries of the metrics service — readings of one
 * device or zone and type over a window, bucketed by a step from the minute
 * series documents (series_readings, one find({sk}) per UTC day) or raw and
 * paginated from the telemetry collection ({hour, device|zone, type} per
 * hour), and alert pages of one device or zone ({day, device|zone} per UTC
 * day, newest first). Each query is one function from a validated
 * mx_hist_query to a protobuf-c response; the REST shim and gRPC both call
 * it (mx_history_api.c). Responses are malloc'd throughout:
 * protobuf_c_message_free_unpacked(msg, NULL) releases them. */
#ifndef MX_HISTORY_H
#define MX_HISTORY_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "iot/v1/metrics.pb-c.h"
#include "iot/v1/storage.pb-c.h"
#include "mx_params.h"
#include "mx_store.h"
#include "mx_timeparse.h"
#include "pw_validate.h"

/* The minute series documents (written by the consumer). */
#define MX_COLL_SERIES "series_readings"
#define MX_F_SK "sk"
#define MX_SERIES_SEP "\x1f"

typedef enum {
    MX_HIST_DEVICE_READINGS,
    MX_HIST_ZONE_READINGS,
    MX_HIST_DEVICE_ALERTS,
    MX_HIST_ZONE_ALERTS,
} mx_hist_kind;

#define MX_HIST_KINDS 4
#define MX_HIST_KEY_BYTES PW_MAX_ID_BYTES /* a device id; a zone is shorter */

/* Raw and alert page sizes. */
#define MX_HIST_RAW_LIMIT_MAX 5000
#define MX_HIST_RAW_LIMIT_DEF 1000
#define MX_HIST_ALERT_LIMIT_MAX 1000
#define MX_HIST_ALERT_LIMIT_DEF 100

/* A validated query: self-contained (the answer cache may copy it). */
typedef struct {
    mx_hist_kind kind;
    char key[MX_HIST_KEY_BYTES + 1];  /* stored (normalized) device id or zone */
    char type[PW_MAX_TYPE_BYTES + 1]; /* stored reading type (readings only) */
    int64_t from_ms, to_ms;           /* the window; bucketed: aligned to the step */
    int64_t step_ms;                  /* > 0 bucketed, MX_STEP_RAW, 0 for alerts */
    uint32_t limit;                   /* raw points / alerts per page */
    int has_cursor;
    mx_cursor cursor;    /* the previous page's last item */
    int64_t deadline_us; /* of the store queries, set by the computation */
} mx_hist_query;

/* The text arguments of a request, as either protocol gives them. Strings
 * are borrowed for the duration of mx_hist_resolve; NULL = not given. */
typedef struct {
    const char *key; /* the path segment (percent-decoded) or request field */
    const char *type, *from, *to, *step, *cursor;
    int limit_set; /* REST: limit given (0 is then out of range); gRPC: limit != 0 */
    uint32_t limit;
} mx_hist_args;

/* The names of the key argument and of the REST query arguments of kind. */
const char *mx_hist_key_name(mx_hist_kind kind);

/* Validates args of kind at now_ms into q. 0, or -1 with every problem in e
 * (param, value, reason). */
int mx_hist_resolve(mx_hist_kind kind, const mx_hist_args *a, int64_t now_ms, mx_hist_query *q,
                    mx_param_error *e);

/* Trims ASCII whitespace and lower-cases ASCII letters, like the consumer
 * normalizes ids, zones and types. 0, or -1 when out is too small. */
int mx_hist_normalize(const char *in, char *out, size_t outlen);

/* Runs q on the store: 0 with the response (DeviceReadingsResponse,
 * ZoneReadingsResponse, DeviceAlertsResponse or ZoneAlertsResponse) in *out,
 * or a negative MX_STORE_* with err. */
int mx_history_run(mx_store *store, const mx_hist_query *q, ProtobufCMessage **out, char *err,
                   size_t errlen);

/* ---- folding minute cells into step buckets (store independent) -------- */

typedef struct {
    uint64_t count;
    double sum, min, max;
    int64_t first_ms, last_ms;
} mx_hist_acc;

typedef struct {
    int64_t from_ms, to_ms, step_ms;  /* aligned window */
    size_t n;                         /* buckets */
    mx_hist_acc *b;                   /* n accumulators, owned */
    char unit[PW_MAX_UNIT_BYTES + 1]; /* of the first state with a unit */
} mx_hist_fold;

/* A fold over the aligned window [from_ms, to_ms) of step_ms buckets (at
 * most MX_HIST_BUCKETS_MAX). 0, or -1 (ENOMEM, bad window). */
int mx_hist_fold_init(mx_hist_fold *f, int64_t from_ms, int64_t to_ms, int64_t step_ms);
void mx_hist_fold_free(mx_hist_fold *f);

/* Adds the minute cells of one hour document (hour start hour_ms) that lie
 * in the window. 0, or -1 when the state is inconsistent (arrays of
 * different lengths, a minute over 59). */
int mx_hist_fold_state(mx_hist_fold *f, int64_t hour_ms, const Iot__V1__SeriesState *st);

/* A ReadingHistory of the fold's non-empty buckets, oldest first (type and
 * fallback unit copied); NULL on ENOMEM. */
Iot__V1__ReadingHistory *mx_hist_fold_build(const mx_hist_fold *f, const char *type,
                                            const char *fallback_unit);

/* The stored unit of a reading type the consumer converts ("C", "hPa"), or "". */
const char *mx_hist_type_unit(const char *type);

#endif
