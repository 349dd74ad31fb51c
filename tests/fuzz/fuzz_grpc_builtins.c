/* libFuzzer target: the requests of the services every pw_grpc server
 * answers before any service code runs — a ServerReflectionRequest (decode,
 * symbol and file look-up in the embedded descriptor set, answer) and a
 * HealthCheckRequest (decode). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "grpc/health/v1/health.pb-c.h"
#include "pw_grpc_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pw_grpc_refl *refl;
    static char *services[] = {"iot.v1.IngestService", "grpc.health.v1.Health"};
    if (refl == NULL) {
        refl = pw_grpc_refl_new();
        if (refl == NULL) {
            abort();
        }
    }
    uint8_t *out = NULL;
    size_t n = 0;
    if (pw_grpc_refl_respond(refl, services, 2, data, size, &out, &n) == 0 && out == NULL) {
        abort();
    }
    free(out);
    Grpc__Health__V1__HealthCheckRequest *h =
        grpc__health__v1__health_check_request__unpack(NULL, size, data);
    if (h != NULL) {
        grpc__health__v1__health_check_request__free_unpacked(h, NULL);
    }
    return 0;
}
