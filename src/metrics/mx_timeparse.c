/* mx_timeparse: window bounds, steps and page cursors of the history
 * queries (see mx_timeparse.h). */
#include "mx_timeparse.h"

#include <stdio.h>
#include <string.h>

#include "pw_time.h"

/* value of s[0..len) as decimal digits without a leading zero (except "0");
 * 0, or -1 when not digits or over max. */
static int parse_digits(const char *s, size_t len, int64_t max, int64_t *out)
{
    if (len == 0 || len > 15 || (len > 1 && s[0] == '0')) {
        return -1;
    }
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

int mx_time_parse(const char *s, int64_t *out_ms)
{
    if (s == NULL || s[0] == '\0') {
        return -1;
    }
    size_t len = strlen(s);
    if (strspn(s, "0123456789") == len) {
        return parse_digits(s, len, MX_TIME_MAX_MS, out_ms);
    }
    int64_t ms = 0;
    if (pw_time_parse_rfc3339(s, &ms) != 0 || ms < 0 || ms > MX_TIME_MAX_MS) {
        return -1;
    }
    *out_ms = ms;
    return 0;
}

int mx_step_parse(const char *s, int64_t *step_ms)
{
    if (s == NULL || s[0] == '\0' || strcmp(s, "auto") == 0) {
        *step_ms = MX_STEP_AUTO;
        return 0;
    }
    if (strcmp(s, "raw") == 0) {
        *step_ms = MX_STEP_RAW;
        return 0;
    }
    size_t len = strlen(s);
    int64_t unit;
    switch (s[len - 1]) {
    case 'm':
        unit = MX_MINUTE_MS;
        break;
    case 'h':
        unit = 60 * MX_MINUTE_MS;
        break;
    case 'd':
        unit = 1440 * MX_MINUTE_MS;
        break;
    default:
        return -1;
    }
    int64_t n = 0;
    if (len > 6 || parse_digits(s, len - 1, 1440, &n) != 0 || n == 0 ||
        n * unit > MX_HIST_STEP_MAX_MS) {
        return -1;
    }
    *step_ms = n * unit;
    return 0;
}

void mx_step_format(int64_t step_ms, char *out, size_t n)
{
    int64_t minutes = step_ms / MX_MINUTE_MS;
    if (minutes % 1440 == 0) {
        snprintf(out, n, "%lldd", (long long)(minutes / 1440));
    } else if (minutes % 60 == 0) {
        snprintf(out, n, "%lldh", (long long)(minutes / 60));
    } else {
        snprintf(out, n, "%lldm", (long long)minutes);
    }
}

/* floor(a / b) for b > 0, also for negative a */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

void mx_step_align(int64_t from, int64_t to, int64_t step, int64_t *afrom, int64_t *ato)
{
    *afrom = floor_div(from, step) * step;
    *ato = -floor_div(-to, step) * step;
}

int64_t mx_step_buckets(int64_t from, int64_t to, int64_t step)
{
    int64_t a, b;
    mx_step_align(from, to, step, &a, &b);
    return (b - a) / step;
}

int64_t mx_step_auto(int64_t from, int64_t to)
{
    static const int64_t minutes[] = {1, 5, 10, 15, 30, 60, 180, 360, 720, 1440};
    for (size_t i = 0; i < sizeof(minutes) / sizeof(minutes[0]); i++) {
        int64_t step = minutes[i] * MX_MINUTE_MS;
        if (mx_step_buckets(from, to, step) <= MX_HIST_BUCKETS_MAX) {
            return step;
        }
    }
    return 0;
}

static const char mx_b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url without padding of in[0..len) into out; -1 when out is too small. */
static int b64url_encode(const unsigned char *in, size_t len, char *out, size_t n)
{
    size_t need = (len * 4 + 2) / 3 + 1;
    if (need > n) {
        return -1;
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        size_t left = len - i;
        if (left > 1) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (left > 2) {
            v |= in[i + 2];
        }
        out[o++] = mx_b64url[(v >> 18) & 63];
        out[o++] = mx_b64url[(v >> 12) & 63];
        if (left > 1) {
            out[o++] = mx_b64url[(v >> 6) & 63];
        }
        if (left > 2) {
            out[o++] = mx_b64url[v & 63];
        }
    }
    out[o] = '\0';
    return 0;
}

static int b64url_value(char c)
{
    const char *p = c ? strchr(mx_b64url, c) : NULL;
    return p ? (int)(p - mx_b64url) : -1;
}

/* Decodes s (no padding) into out; returns the byte count or -1. Trailing
 * bits must be zero, so every byte string has exactly one text. */
static long b64url_decode(const char *s, unsigned char *out, size_t n)
{
    size_t len = strlen(s);
    if (len % 4 == 1) {
        return -1;
    }
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value(s[i]);
        if (v < 0) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= n) {
                return -1;
            }
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return acc == 0 ? (long)o : -1;
}

static int token_valid(const char *t, size_t len)
{
    if (len == 0 || len > MX_TOKEN_MAX) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (t[i] < 0x21 || t[i] > 0x7e) {
            return 0;
        }
    }
    return 1;
}

int mx_cursor_encode(const mx_cursor *c, char *out, size_t n)
{
    char plain[MX_TOKEN_MAX + 32];
    size_t tlen = strnlen(c->token, sizeof(c->token));
    if (c->ts_ms < 0 || c->ts_ms > MX_TIME_MAX_MS || !token_valid(c->token, tlen)) {
        return -1;
    }
    int len = snprintf(plain, sizeof(plain), "1:%lld:%s", (long long)c->ts_ms, c->token);
    return b64url_encode((const unsigned char *)plain, (size_t)len, out, n);
}

int mx_cursor_decode(const char *s, mx_cursor *c)
{
    unsigned char plain[MX_TOKEN_MAX + 32];
    if (s == NULL || strlen(s) >= MX_CURSOR_TEXT_MAX) {
        return -1;
    }
    long len = b64url_decode(s, plain, sizeof(plain) - 1);
    if (len < 4 || memchr(plain, '\0', (size_t)len) != NULL) {
        return -1;
    }
    plain[len] = '\0';
    const char *p = (const char *)plain;
    if (strncmp(p, "1:", 2) != 0) {
        return -1;
    }
    const char *ts = p + 2;
    const char *colon = strchr(ts, ':');
    if (colon == NULL) {
        return -1;
    }
    int64_t ms = 0;
    const char *token = colon + 1;
    size_t tlen = strlen(token);
    if (parse_digits(ts, (size_t)(colon - ts), MX_TIME_MAX_MS, &ms) != 0 ||
        !token_valid(token, tlen)) {
        return -1;
    }
    c->ts_ms = ms;
    memcpy(c->token, token, tlen + 1);
    return 0;
}
