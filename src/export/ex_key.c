/* ex_key: read-key lookup of plantwatch-export. */
#include "ex_key.h"

#include <stdlib.h>
#include <string.h>

#include "pw_env.h"

static int ex_key_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The next whitespace-separated word of line [p, end) into *w / *wlen. */
static const char *ex_key_word(const char *p, const char *end, const char **w, size_t *wlen)
{
    while (p < end && ex_key_is_space(*p)) {
        p++;
    }
    *w = p;
    while (p < end && !ex_key_is_space(*p)) {
        p++;
    }
    *wlen = (size_t)(p - *w);
    return p;
}

int ex_key_from_text(const char *text, char *out, size_t outlen)
{
    const char *p = text;
    while (*p != '\0') {
        const char *end = strchr(p, '\n');
        end = end ? end : p + strlen(p);
        const char *w1, *w2;
        size_t l1, l2;
        const char *rest = ex_key_word(p, end, &w1, &l1);
        ex_key_word(rest, end, &w2, &l2);
        if (l1 > 0 && w1[0] != '#') {
            const char *key = l2 > 0 ? w2 : w1;
            size_t len = l2 > 0 ? l2 : l1;
            if (len + 1 > outlen) {
                return -1;
            }
            memcpy(out, key, len);
            out[len] = '\0';
            return 0;
        }
        p = *end ? end + 1 : end;
    }
    return -1;
}

int ex_key_load(char *out, size_t outlen)
{
    out[0] = '\0';
    char *text = pw_env_secret("PW_READ_KEY");
    if (text == NULL) {
        return 1;
    }
    int rc = ex_key_from_text(text, out, outlen);
    free(text);
    return rc;
}
