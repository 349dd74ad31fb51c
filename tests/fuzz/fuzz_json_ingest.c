/* libFuzzer target: REST body → JSON decode → all-or-nothing validation →
 * packed Envelopes (pw_ingest_from_json). The first input byte picks the kind
 * and whether an Idempotency-Key is set; the rest is the body. Checks that a
 * success yields 1..1000 decodable envelopes and a failure a known code. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "pw_time.h"

static void pw_fuzz_check_envelopes(const pw_ingest_batch *b, pw_kind kind)
{
    for (size_t i = 0; i < b->n; i++) {
        Iot__V1__Envelope *env =
            iot__v1__envelope__unpack(NULL, b->msgs[i].value_len, b->msgs[i].value);
        if (!env || strcmp(env->token, b->msgs[i].token) != 0) {
            abort();
        }
        int is_alert = env->payload_case == IOT__V1__ENVELOPE__PAYLOAD_ALERT;
        if (is_alert != (kind == PW_KIND_ALERT)) {
            abort();
        }
        const char *dev = is_alert ? env->alert->device_id : env->reading->device_id;
        if (strcmp(dev, b->msgs[i].key) != 0) {
            abort();
        }
        iot__v1__envelope__free_unpacked(env, NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    pw_kind kind = (data[0] & 1) ? PW_KIND_ALERT : PW_KIND_READING;
    pw_ingest_meta meta = {.consumer = "fuzz",
                           .idem_key = (data[0] & 2) ? "fuzz-key" : NULL,
                           .source = IOT__V1__SOURCE__SOURCE_REST,
                           .received_ms = pw_now_ms()};
    pw_ingest_batch b;
    pw_ingest_batch_init(&b);
    pw_ingest_error e;
    int n = pw_ingest_from_json(&b, kind, (const char *)data + 1, size - 1, &meta, &e);
    if (n > 0) {
        if ((size_t)n != b.n || n > PW_MAX_BATCH) {
            abort();
        }
        pw_fuzz_check_envelopes(&b, kind);
    } else {
        if (b.n != 0 || !e.code || e.status != 400) {
            abort();
        }
        if (strcmp(e.code, "invalid_json") != 0 && strcmp(e.code, "validation_failed") != 0) {
            abort();
        }
        pw_ingest_error_clear(&e);
    }
    pw_ingest_batch_free(&b);
    return 0;
}
