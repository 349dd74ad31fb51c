/* pw_uuid: owns idempotency tokens — random v4 UUIDs, and name-based v5 UUIDs
 * derived from (consumer, Idempotency-Key, kind, index) in the project
 * namespace, so a retried request yields the same tokens. */
#include "pw_uuid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

/* The plantwatch namespace for v5 tokens: 09a89147-e267-4079-a5b6-ff85d2fed1ac.
 * Changing it changes every derived token; never change it. */
static const uuid_t pw_uuid_namespace = {0x09, 0xa8, 0x91, 0x47, 0xe2, 0x67, 0x40, 0x79,
                                         0xa5, 0xb6, 0xff, 0x85, 0xd2, 0xfe, 0xd1, 0xac};

void pw_uuid_random(char out[PW_UUID_LEN])
{
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

void pw_uuid_derive(const char *consumer, const char *key, const char *kind, unsigned index,
                    char out[PW_UUID_LEN])
{
    /* name = consumer \x1f key \x1f kind \x1f index (decimal) */
    char idx[16];
    snprintf(idx, sizeof idx, "%u", index);
    const char *parts[4] = {consumer ? consumer : "", key ? key : "", kind ? kind : "", idx};
    size_t total = 0;
    for (int i = 0; i < 4; i++) {
        total += strlen(parts[i]) + 1;
    }
    char stackbuf[512];
    char *buf = total <= sizeof stackbuf ? stackbuf : malloc(total);
    if (buf == NULL) {
        abort(); /* a token must never silently differ between retries */
    }
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        size_t n = strlen(parts[i]);
        memcpy(buf + off, parts[i], n);
        off += n;
        if (i < 3) {
            buf[off++] = '\x1f';
        }
    }
    uuid_t u;
    uuid_generate_sha1(u, pw_uuid_namespace, buf, off);
    if (buf != stackbuf) {
        free(buf);
    }
    uuid_unparse_lower(u, out);
}

int pw_idempotency_key_valid(const char *key)
{
    if (key == NULL) {
        return 0;
    }
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++, n++) {
        if (*p < 0x21 || *p > 0x7e || n >= 128) {
            return 0;
        }
    }
    return n >= 1;
}
