/* mx_params: the parameters of the analytics views, their ranges and
 * defaults, and their validation from either protocol: REST query arguments
 * (text, strict decimal integers) and gRPC request messages (protobuf-c,
 * 0 = default). Both paths produce the same mx_params for the same request. */
#ifndef MX_PARAMS_H
#define MX_PARAMS_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "pw_validate.h"

/* A zone filter: at most the characters of an accepted zone (code points). */
#define MX_ZONE_MAX PW_MAX_ZONE_LEN
#define MX_ZONE_BYTES PW_MAX_ZONE_BYTES

typedef struct {
    int64_t now_ms;      /* evaluation time, set by the caller */
    int64_t deadline_us; /* monotonic deadline of the store queries (0 = none), set by the
                            computation; not part of what selects an answer */
    uint32_t window_hours;
    uint32_t top;
    uint32_t silent_minutes;
    uint32_t limit;
    char zone[MX_ZONE_BYTES + 1]; /* "" = all zones */
} mx_params;

typedef enum { MX_PARAM_UINT, MX_PARAM_ZONE } mx_param_kind;

typedef struct {
    const char *name; /* query argument and proto field name */
    mx_param_kind kind;
    uint32_t min, max, def; /* MX_PARAM_UINT only */
    size_t offset;          /* of the member in mx_params */
} mx_param_spec;

/* Validation failures: count problems; message is a one-line summary of
 * them (as many as fit, printable ASCII and valid UTF-8 only: a name or value
 * that is not is not quoted), details a JSON array of {"param", "value",
 * "reason"} objects for the first MX_PARAM_DETAILS_MAX of them. */
#define MX_PARAM_DETAILS_MAX 8
typedef struct {
    int count;
    char message[512];
    json_t *details;
} mx_param_error;

void mx_param_error_init(mx_param_error *e);
void mx_param_error_free(mx_param_error *e);

/* Records one problem of a parameter (value NULL: not echoed), for the
 * queries whose parameters are not mx_param_spec tables (mx_history). */
void mx_param_error_add(mx_param_error *e, const char *param, const char *value,
                        const char *reason);

/* Every parameter of specs at its default, zone empty, now_ms 0. */
void mx_params_defaults(const mx_param_spec *specs, size_t n, mx_params *out);

/* One REST query argument (value NULL when the argument had no '='). Records
 * an error for unknown names, repeated names (seen_mask tracks them, one bit
 * per spec), non-integers and out-of-range values. Returns 0 or -1. */
int mx_params_set_text(const mx_param_spec *specs, size_t n, mx_params *p, unsigned *seen_mask,
                       const char *name, const char *value, mx_param_error *e);

/* All parameters from a decoded request message whose fields carry the spec
 * names; unset (0 / "") fields take their defaults. Returns 0 or -1. */
int mx_params_from_message(const mx_param_spec *specs, size_t n, const ProtobufCMessage *req,
                           mx_params *p, mx_param_error *e);

#endif
