/* mx_semver: semantic-version parsing and precedence (semver.org §11). */
#include "mx_semver.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>

#define MX_SEMVER_MAX_NUM 1000000000000ULL

typedef struct {
    uint64_t num[3];
    const char *pre; /* prerelease identifiers, NULL when none */
    size_t pre_len;
} mx_semver;

static int parse_num(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (!isdigit((unsigned char)*s)) {
        return -1;
    }
    while (isdigit((unsigned char)*s)) {
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > MX_SEMVER_MAX_NUM) {
            return -1;
        }
        s++;
    }
    *out = v;
    *p = s;
    return 0;
}

static int ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '.';
}

static int parse(const char *s, mx_semver *v)
{
    memset(v, 0, sizeof(*v));
    if (s == NULL) {
        return -1;
    }
    if (*s == 'v' || *s == 'V') {
        s++;
    }
    for (int i = 0; i < 3; i++) {
        if (parse_num(&s, &v->num[i]) != 0) {
            return -1;
        }
        if (*s != '.') {
            break;
        }
        if (i == 2) {
            return -1;
        }
        s++;
    }
    if (*s == '-') {
        s++;
        v->pre = s;
        while (*s && *s != '+') {
            if (!ident_char(*s)) {
                return -1;
            }
            s++;
        }
        v->pre_len = (size_t)(s - v->pre);
        if (v->pre_len == 0) {
            return -1;
        }
    }
    if (*s == '+') {
        s++;
        if (*s == '\0') {
            return -1;
        }
        while (*s) {
            if (!ident_char(*s)) {
                return -1;
            }
            s++;
        }
    }
    return *s == '\0' ? 0 : -1;
}

int mx_semver_valid(const char *s)
{
    mx_semver v;
    return parse(s, &v) == 0;
}

static int all_digits(const char *s, size_t n)
{
    if (n == 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

/* One dot-separated prerelease identifier against another. */
static int cmp_ident(const char *a, size_t an, const char *b, size_t bn)
{
    int ad = all_digits(a, an), bd = all_digits(b, bn);
    if (ad && bd) {
        while (an > 1 && *a == '0') {
            a++, an--;
        }
        while (bn > 1 && *b == '0') {
            b++, bn--;
        }
        if (an != bn) {
            return an < bn ? -1 : 1;
        }
        return memcmp(a, b, an);
    }
    if (ad != bd) {
        return ad ? -1 : 1; /* numeric identifiers sort below alphanumeric ones */
    }
    size_t n = an < bn ? an : bn;
    int c = memcmp(a, b, n);
    if (c != 0) {
        return c;
    }
    return an == bn ? 0 : (an < bn ? -1 : 1);
}

static int cmp_pre(const mx_semver *a, const mx_semver *b)
{
    if (a->pre == NULL || b->pre == NULL) {
        /* a release is newer than any of its prereleases */
        return a->pre == b->pre ? 0 : (a->pre == NULL ? 1 : -1);
    }
    const char *pa = a->pre, *ea = a->pre + a->pre_len;
    const char *pb = b->pre, *eb = b->pre + b->pre_len;
    while (pa < ea && pb < eb) {
        const char *da = memchr(pa, '.', (size_t)(ea - pa));
        const char *db = memchr(pb, '.', (size_t)(eb - pb));
        if (da == NULL) {
            da = ea;
        }
        if (db == NULL) {
            db = eb;
        }
        int c = cmp_ident(pa, (size_t)(da - pa), pb, (size_t)(db - pb));
        if (c != 0) {
            return c < 0 ? -1 : 1;
        }
        pa = da < ea ? da + 1 : ea;
        pb = db < eb ? db + 1 : eb;
    }
    if (pa < ea) {
        return 1; /* more identifiers: newer */
    }
    return pb < eb ? -1 : 0;
}

int mx_semver_cmp(const char *a, const char *b)
{
    mx_semver va, vb;
    int oka = parse(a, &va) == 0, okb = parse(b, &vb) == 0;
    if (!oka || !okb) {
        if (oka != okb) {
            return oka ? 1 : -1;
        }
        int c = strcmp(a ? a : "", b ? b : "");
        return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    for (int i = 0; i < 3; i++) {
        if (va.num[i] != vb.num[i]) {
            return va.num[i] < vb.num[i] ? -1 : 1;
        }
    }
    return cmp_pre(&va, &vb);
}
