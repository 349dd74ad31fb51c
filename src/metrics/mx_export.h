/* mx_export: the streamed export of raw readings and alerts as CSV (RFC
 * 4180) or NDJSON — GET /v1/export/readings and GET /v1/export/alerts.
 *
 * Parameters are validated completely before the answer starts (a bad one is
 * a 400 in the platform's error format, no body row is ever sent); the body
 * is then produced by libmicrohttpd's content-reader callback (chunked), one
 * UTC hour of the window at a time, each hour one find with equality filters
 * only ({hour} plus device / zone / type / severity when given, which
 * FerretDB pushes down to PostgreSQL), sorted by ts then _id and read in
 * cursor batches. Memory per export is one batch and one output buffer,
 * whatever the window's size. A store failure after the first byte ends the
 * stream without the terminating chunk (NDJSON: after an error line), so a
 * client can always tell a complete export from a cut one.
 *
 * At most max_streams exports run at once; one more gets 503 with
 * Retry-After. Each export has its own store client (never one of the views'
 * pool), created when the export starts and closed when it ends. */
#ifndef MX_EXPORT_H
#define MX_EXPORT_H

#include <bson/bson.h>
#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

#include "mx_params.h"
#include "mx_store.h"
#include "pw_time.h"
#include "pw_validate.h"

#define MX_EXPORT_MAX_RANGE_MS (31LL * PW_DAY_MS) /* longest window of one export */
#define MX_EXPORT_DEFAULT_RANGE_MS PW_DAY_MS      /* from defaults to to - 24 h */
#define MX_EXPORT_SEVERITY_BYTES 16

typedef enum { MX_EXPORT_READINGS = 0, MX_EXPORT_ALERTS = 1 } mx_export_kind;
typedef enum { MX_EXPORT_CSV = 0, MX_EXPORT_NDJSON = 1 } mx_export_format;

/* One validated export request. Filters hold the stored (normalized:
 * trimmed, ASCII lower-cased) form; "" = no filter. */
typedef struct {
    mx_export_kind kind;
    mx_export_format format;
    int64_t from_ms; /* inclusive */
    int64_t to_ms;   /* exclusive */
    int from_set, to_set;
    char device[PW_MAX_ID_BYTES + 1];
    char zone[PW_MAX_ZONE_BYTES + 1];
    char type[PW_MAX_TYPE_BYTES + 1];            /* readings only */
    char severity[MX_EXPORT_SEVERITY_BYTES + 1]; /* alerts only */
} mx_export_query;

/* ---- parameters ------------------------------------------------------------ */

/* RFC 3339 (offsets and fractions allowed; a space where the offset's '+'
 * was, as a query string's unescaped '+' arrives) or epoch milliseconds
 * (1..15 decimal digits). 0 with *out_ms, or -1. */
int mx_export_parse_time(const char *text, int64_t *out_ms);

/* Trims ASCII whitespace and lower-cases A-Z like the consumer does with
 * ids; other bytes are kept. -1 when the result does not fit outlen - 1. */
int mx_export_normalize(const char *in, char *out, size_t outlen);

/* A query of kind with nothing set (format csv). */
void mx_export_query_init(mx_export_query *q, mx_export_kind kind);

/* One query argument (value NULL: no '='). Unknown names, repeats (seen
 * tracks them), invalid text and bad values are recorded in e. 0 or -1. */
int mx_export_query_set(mx_export_query *q, unsigned *seen, const char *name, const char *value,
                        mx_param_error *e);

/* Applies the defaults of from / to (now_ms) and checks the window: from
 * before to, at most MX_EXPORT_MAX_RANGE_MS. 0 or -1 (recorded in e). */
int mx_export_query_finish(mx_export_query *q, int64_t now_ms, mx_param_error *e);

/* ---- formatting ------------------------------------------------------------ */

/* A growable byte buffer; the owner frees data. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} mx_export_buf;

void mx_export_buf_free(mx_export_buf *b);

/* The CSV header row of kind (CRLF-terminated). 0, or -1 on ENOMEM. */
int mx_export_header(mx_export_kind kind, mx_export_buf *b);

/* One CSV field per RFC 4180 (quoted when it holds a comma, quote, CR or LF,
 * with quotes doubled), no separator. 0 or -1. */
int mx_export_csv_field(mx_export_buf *b, const char *text);

/* The shortest decimal text of v that reads back as exactly v ("%.15g" …
 * "%.17g"); out holds at least 32 bytes. Returns the precision used. */
int mx_export_format_double(double v, char *out, size_t outlen);

/* Appends the row of one stored document (raw reading or alert, as the
 * consumer writes it) in q's format and kind. 0 or -1 (ENOMEM). */
int mx_export_row(const mx_export_query *q, const bson_t *doc, mx_export_buf *b);

/* Content-Disposition value: attachment; filename="<safe ASCII>" and, when
 * the name has non-ASCII characters, filename*=UTF-8''<percent-encoded>. */
void mx_export_disposition(const mx_export_query *q, char *out, size_t outlen);

/* The store filter of hour_ms for q (bson_init'ed by the call; caller
 * destroys it). */
void mx_export_filter(const mx_export_query *q, int64_t hour_ms, bson_t *filter);

/* ---- serving ----------------------------------------------------------------- */

typedef struct mx_exporter mx_exporter;

/* store stays owned by the caller and must outlive the exporter (and every
 * export it started: stop the HTTP daemon first). query_timeout_ms bounds
 * each hour's find (maxTimeMS; the socket timeout is 1 s longer). NULL on
 * ENOMEM. */
mx_exporter *mx_exporter_new(mx_store *store, unsigned max_streams, long query_timeout_ms);
void mx_exporter_free(mx_exporter *x);

/* Exports running now. */
unsigned mx_exporter_running(mx_exporter *x);

/* Answers url when it is an export path: returns 1 and sets *result; else 0
 * (the caller routes it). x NULL: never an export path. */
int mx_export_serve(mx_exporter *x, struct MHD_Connection *c, const char *url,
                    enum MHD_Result *result);

#endif
