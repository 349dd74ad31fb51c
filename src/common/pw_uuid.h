/* pw_uuid: idempotency tokens. Random (v4) when the client sends no key;
 * name-based (v5, SHA-1) when it does, so a retried request maps to the same
 * tokens. */
#ifndef PW_UUID_H
#define PW_UUID_H

#define PW_UUID_LEN 37 /* 36 characters + NUL */

void pw_uuid_random(char out[PW_UUID_LEN]);

/* Deterministic token for message `index` of kind ("reading"/"alert") in a
 * request carrying Idempotency-Key `key` from gateway consumer `consumer`. */
void pw_uuid_derive(const char *consumer, const char *key, const char *kind, unsigned index,
                    char out[PW_UUID_LEN]);

/* 1 if key is a valid Idempotency-Key: 1..128 visible ASCII characters. */
int pw_idempotency_key_valid(const char *key);

#endif
