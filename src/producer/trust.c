/* trust: the gateway secret check of every ingest request (see trust.h). The
 * secret lives in p->cfg.gateway_secret for the process's lifetime; the
 * refusal counter is registered on p->prom the first time it is needed (the
 * registry returns the same family afterwards). */
#include "trust.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "pw_log.h"

#define PW_TRUST_TOKEN_MAX 1024

static int pw_trust_digest(const char *s, unsigned char out[EVP_MAX_MD_SIZE])
{
    unsigned int n = 0;
    if (EVP_Digest(s, strlen(s), out, &n, EVP_sha256(), NULL) != 1) {
        return -1;
    }
    return (int)n;
}

int pw_trust_token_ok(const char *secret, const char *token)
{
    if (secret == NULL || token == NULL || secret[0] == '\0') {
        return 0;
    }
    unsigned char want[EVP_MAX_MD_SIZE], got[EVP_MAX_MD_SIZE];
    int n = pw_trust_digest(secret, want);
    if (n <= 0 || pw_trust_digest(token, got) != n) {
        return 0;
    }
    return CRYPTO_memcmp(want, got, (size_t)n) == 0;
}

static void pw_trust_count(pw_producer *p, const char *api, const char *what, int present)
{
    pw_prom_family *f = pw_prom_counter(p->prom, "pw_untrusted_requests_total",
                                        "Ingest requests refused because they did not carry the "
                                        "gateway secret, by API",
                                        "api");
    const char *labels[] = {api};
    if (f != NULL) {
        pw_prom_add(f, labels, 1);
    }
    json_t *fields =
        json_pack("{s:s,s:s,s:b}", "api", api, "target", what, "token_present", present);
    pw_log_fields(PW_LOG_WARN, "untrusted", fields, "%s %s refused: %s", api, what,
                  present ? "wrong gateway token" : "no gateway token");
}

int pw_trust_rest_refused(pw_producer *p, struct MHD_Connection *c, const char *route)
{
    const char *token = MHD_lookup_connection_value(c, MHD_HEADER_KIND, PW_TRUST_HEADER);
    if (pw_trust_token_ok(p->cfg.gateway_secret, token)) {
        return 0;
    }
    pw_trust_count(p, "rest", route, token != NULL);
    return 1;
}

int pw_trust_grpc_refused(pw_producer *p, pw_grpc_call *call, const char *method)
{
    char token[PW_TRUST_TOKEN_MAX];
    const char *got = pw_grpc_call_metadata(call, PW_TRUST_METADATA, token, sizeof(token));
    if (pw_trust_token_ok(p->cfg.gateway_secret, got)) {
        return 0;
    }
    pw_trust_count(p, "grpc", method, got != NULL);
    pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_UNAUTHENTICATED, PW_TRUST_MESSAGE);
    const char *labels[] = {method, "UNAUTHENTICATED"};
    pw_prom_add(p->grpc_requests, labels, 1);
    return 1;
}
