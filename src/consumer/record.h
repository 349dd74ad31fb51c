/* record: one decoded, validated and normalized message as the consumer
 * stores it (see the storage schema), plus where it came from in Kafka.
 * Every text buffer holds the longest value the validator accepts
 * (PW_MAX_*_BYTES: 4 bytes per character) and its NUL, so a value is stored
 * whole; a value that does not fit is refused, never shortened. */
#ifndef PWC_RECORD_H
#define PWC_RECORD_H

#include <stdint.h>

#include "pw_time.h"
#include "pw_validate.h"

typedef enum { PWC_READING = 1, PWC_ALERT = 2 } pwc_kind;

#define PWC_TOKEN_LEN 129
#define PWC_ORIGIN_LEN 300
#define PWC_CONSUMER_LEN (PW_MAX_ID_BYTES + 1)

typedef struct {
    pwc_kind kind;
    char token[PWC_TOKEN_LEN];
    int64_t ts_ms;
    int64_t hour_ms;
    char day[PW_DAY_LEN];
    int64_t received_ms;              /* producer's receive time; 0 in envelopes that lack it */
    char device[PW_MAX_ID_BYTES + 1]; /* normalized: trimmed, ASCII lower-case */
    char zone[PW_MAX_ZONE_BYTES + 1]; /* normalized: trimmed, ASCII lower-case */
    char firmware[PW_MAX_FIRMWARE_BYTES + 1];
    char consumer[PWC_CONSUMER_LEN]; /* gateway consumer name */
    char source[8];                  /* "rest", "grpc" or "" */
    /* what the sensor sent when normalization changed it, else "" */
    char device_orig[PW_MAX_ID_BYTES + 1];
    char zone_orig[PW_MAX_ZONE_BYTES + 1];
    char type_orig[PW_MAX_TYPE_BYTES + 1];
    /* reading */
    char type[PW_MAX_TYPE_BYTES + 1]; /* normalized: trimmed, ASCII lower-case */
    double value;
    char unit[PW_MAX_UNIT_BYTES + 1];
    double raw_value;
    char raw_unit[PW_MAX_UNIT_BYTES + 1];
    /* alert */
    char severity[16];
    char code[PW_MAX_CODE_BYTES + 1];
    char message[PW_MAX_MESSAGE_BYTES + 1];
} pwc_record;

/* A record in a batch with its Kafka position. The store sets `contributes`
 * when this delivery is the one whose rollup deltas must be applied, and
 * `new_device` when this delivery is the one that made its device active for
 * its UTC day (it adds one active device to its hour's rollup). */
typedef struct {
    const pwc_record *rec;
    const char *topic;
    int32_t partition;
    int64_t offset;
    int contributes;
    int new_device;
} pwc_entry;

/* "topic:partition:offset" (dots in the topic replaced by '_'). */
void pwc_origin_format(const char *topic, int32_t partition, int64_t offset, char *out,
                       size_t outlen);
/* "topic:partition", usable as a BSON field name. */
void pwc_tp_key(const char *topic, int32_t partition, char *out, size_t outlen);

#endif
