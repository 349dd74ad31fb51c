/* libFuzzer target: protobuf decoding paths. Even first byte: the input is a
 * gRPC PublishRequest → validation → Envelopes (pw_ingest_from_request). Odd:
 * the input is a Kafka record value (Envelope) → decode → pw_reading_check /
 * pw_alert_check, as a consumer would. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "pw_time.h"

static void pw_fuzz_request(const uint8_t *data, size_t size)
{
    Iot__V1__PublishRequest *req = iot__v1__publish_request__unpack(NULL, size, data);
    if (!req) {
        return;
    }
    pw_ingest_meta meta = {.consumer = "fuzz",
                           .idem_key = req->idempotency_key[0] ? "k" : NULL,
                           .stream_message = -1,
                           .source = IOT__V1__SOURCE__SOURCE_GRPC,
                           .received_ms = pw_now_ms()};
    pw_ingest_batch b;
    pw_ingest_batch_init(&b);
    char msg[512];
    int n = pw_ingest_from_request(&b, req, &meta, msg, sizeof(msg));
    if (n >= 0) {
        if ((size_t)n != req->n_readings + req->n_alerts || (size_t)n != b.n) {
            abort();
        }
        for (size_t i = 0; i < b.n; i++) {
            Iot__V1__Envelope *env =
                iot__v1__envelope__unpack(NULL, b.msgs[i].value_len, b.msgs[i].value);
            if (!env) {
                abort();
            }
            pw_errors errs;
            pw_errors_init(&errs);
            int ok = env->payload_case == IOT__V1__ENVELOPE__PAYLOAD_READING
                         ? pw_reading_check(env->reading, 0, meta.received_ms, 0, &errs)
                         : pw_alert_check(env->alert, 0, meta.received_ms, 0, &errs);
            if (ok != 0) { /* what ingest accepted must pass the consumer's check */
                abort();
            }
            pw_errors_free(&errs);
            iot__v1__envelope__free_unpacked(env, NULL);
        }
    } else if (b.n != 0 || !msg[0]) {
        abort();
    }
    pw_ingest_batch_free(&b);
    iot__v1__publish_request__free_unpacked(req, NULL);
}

static void pw_fuzz_envelope(const uint8_t *data, size_t size)
{
    Iot__V1__Envelope *env = iot__v1__envelope__unpack(NULL, size, data);
    if (!env) {
        return;
    }
    pw_errors errs;
    pw_errors_init(&errs);
    if (env->payload_case == IOT__V1__ENVELOPE__PAYLOAD_READING) {
        pw_reading_check(env->reading, -1, pw_now_ms(), 0, &errs);
    } else if (env->payload_case == IOT__V1__ENVELOPE__PAYLOAD_ALERT) {
        pw_alert_check(env->alert, -1, pw_now_ms(), 0, &errs);
    }
    char summary[256];
    pw_errors_summary(&errs, summary, sizeof(summary));
    json_decref(pw_errors_to_json(&errs));
    pw_errors_free(&errs);
    iot__v1__envelope__free_unpacked(env, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    if (data[0] & 1) {
        pw_fuzz_envelope(data + 1, size - 1);
    } else {
        pw_fuzz_request(data + 1, size - 1);
    }
    return 0;
}
