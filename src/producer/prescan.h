/* prescan: a cheap walk over the protobuf wire format of an
 * iot.v1.PublishRequest, run before protobuf-c decodes it. protobuf-c
 * allocates per field occurrence (one Reading per readings entry, one
 * bookkeeping slot per scanned field, one record per unknown field), so a
 * 3 MB request of 1.5 M empty readings costs hundreds of MiB once decoded.
 * The pre-scan counts items and field occurrences without allocating and
 * refuses what the producer would refuse anyway, before any memory is spent:
 *   - malformed wire format (bad varints, lengths past the end, groups,
 *     field number 0, a known field with the wrong wire type);
 *   - more than PW_MAX_BATCH readings + alerts;
 *   - more than PW_PRESCAN_MAX_ITEM_FIELDS field occurrences in one reading
 *     or alert, more than PW_PRESCAN_MAX_EXTRA_FIELDS occurrences of other
 *     top-level fields (idempotency_key, unknown fields);
 *   - a string field holding U+0000 (protobuf-c's C strings would cut it
 *     there and forward a prefix).
 * Pure code: no I/O, no allocation; unit-tested and fuzzed directly. */
#ifndef PW_PRODUCER_PRESCAN_H
#define PW_PRODUCER_PRESCAN_H

#include <stddef.h>
#include <stdint.h>

/* Field occurrences allowed in one Reading / Alert (7 schema fields plus
 * room for fields of a newer schema). */
#define PW_PRESCAN_MAX_ITEM_FIELDS 32
/* Occurrences of top-level fields other than readings/alerts. */
#define PW_PRESCAN_MAX_EXTRA_FIELDS 16

typedef enum {
    PW_PRESCAN_OK = 0,
    PW_PRESCAN_MALFORMED, /* not a decodable PublishRequest */
    PW_PRESCAN_TOO_MANY,  /* more than PW_MAX_BATCH items */
    PW_PRESCAN_TOO_DENSE, /* too many field occurrences in one item / at top level */
    PW_PRESCAN_NUL        /* a string field contains U+0000 */
} pw_prescan_rc;

typedef struct {
    size_t readings, alerts; /* items counted (up to where the scan stopped) */
    size_t offset;           /* byte offset of the problem (malformed) */
    char message[160];       /* what is wrong, naming the field; "" when OK */
} pw_prescan_result;

/* Scans buf[0..len) (borrowed, not kept). Returns PW_PRESCAN_OK when
 * protobuf-c may decode it within the bounds above; else the reason, with
 * out->message filled. */
pw_prescan_rc pw_prescan_publish_request(const uint8_t *buf, size_t len, pw_prescan_result *out);

#endif
