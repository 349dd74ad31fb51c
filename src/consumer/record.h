/* record: one decoded, validated and normalized message as the consumer
 * stores it (see the storage schema), plus where it came from in Kafka. */
#ifndef PWC_RECORD_H
#define PWC_RECORD_H

#include <stdint.h>

#include "pw_time.h"
#include "pw_validate.h"

typedef enum { PWC_READING = 1, PWC_ALERT = 2 } pwc_kind;

#define PWC_TOKEN_LEN 129
#define PWC_ORIGIN_LEN 300

typedef struct {
    pwc_kind kind;
    char token[PWC_TOKEN_LEN];
    int64_t ts_ms;
    int64_t hour_ms;
    char day[PW_DAY_LEN];
    int64_t received_ms;
    char device[PW_MAX_ID_LEN + 1];
    char zone[PW_MAX_ZONE_LEN + 1];
    char firmware[PW_MAX_FIRMWARE_LEN + 1];
    char consumer[PW_MAX_ID_LEN + 1]; /* gateway consumer name */
    char source[8];                   /* "rest", "grpc" or "" */
    /* reading */
    char type[PW_MAX_TYPE_LEN + 1];
    double value;
    char unit[PW_MAX_UNIT_LEN + 1];
    double raw_value;
    char raw_unit[PW_MAX_UNIT_LEN + 1];
    /* alert */
    char severity[16];
    char code[PW_MAX_CODE_LEN + 1];
    char message[PW_MAX_MESSAGE_LEN + 1];
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
