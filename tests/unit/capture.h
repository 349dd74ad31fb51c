/* capture: an in-memory FILE for unit tests that check printed output
 * (include after cmocka.h). cap_close returns the text, owned by the
 * caller (free it). */
#ifndef PW_TEST_CAPTURE_H
#define PW_TEST_CAPTURE_H

#include <stdio.h>

typedef struct {
    char *buf;
    size_t len;
    FILE *f;
} capture;

static inline void cap_open(capture *c)
{
    c->buf = NULL;
    c->len = 0;
    c->f = open_memstream(&c->buf, &c->len);
    assert_non_null(c->f);
}

static inline char *cap_close(capture *c)
{
    fclose(c->f);
    return c->buf;
}

#endif
