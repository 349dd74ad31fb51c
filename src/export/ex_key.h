/* ex_key: the read key plantwatch-export sends (header apikey), from
 * PW_READ_KEY_FILE or PW_READ_KEY: a bare key, or a key file of `name key`
 * lines (the stack's read-keys), whose first key is taken. */
#ifndef EX_KEY_H
#define EX_KEY_H

#include <stddef.h>

/* The key of text (a bare key or the first `name key` line), copied into
 * out; 0, or -1 when text holds none or it does not fit. */
int ex_key_from_text(const char *text, char *out, size_t outlen);

/* The configured key into out: 0, 1 when none is configured (out = ""), or
 * -1 when the configured one is unusable. */
int ex_key_load(char *out, size_t outlen);

#endif
