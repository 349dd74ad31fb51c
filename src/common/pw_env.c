/* pw_env: owns reading configuration from the environment — strings with
 * defaults, range-checked integers, and secrets from NAME_FILE or NAME. */
#include "pw_env.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *pw_env_str(const char *name, const char *def)
{
    const char *v = getenv(name);
    return (v == NULL || v[0] == '\0') ? def : v;
}

int pw_env_long(const char *name, long def, long min, long max, long *out, char *err, size_t errlen)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        *out = def;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    while (end != NULL && (*end == ' ' || *end == '\t' || *end == '\n')) {
        end++;
    }
    if (errno != 0 || end == v || *end != '\0' || v[0] == ' ' || v[0] == '\t') {
        snprintf(err, errlen, "%s: not an integer: \"%s\"", name, v);
        return -1;
    }
    if (n < min || n > max) {
        snprintf(err, errlen, "%s: %ld out of range [%ld, %ld]", name, n, min, max);
        return -1;
    }
    *out = n;
    return 0;
}

static char *pw_env_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 256, len = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) {
            break;
        }
        if (len + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int failed = ferror(f);
    fclose(f);
    if (buf == NULL || failed) {
        free(buf);
        return NULL;
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) {
        len--;
    }
    buf[len] = '\0';
    return buf;
}

char *pw_env_secret(const char *name)
{
    char file_var[256];
    snprintf(file_var, sizeof file_var, "%s_FILE", name);
    const char *path = getenv(file_var);
    if (path != NULL && path[0] != '\0') {
        return pw_env_read_file(path);
    }
    const char *v = getenv(name);
    if (v != NULL && v[0] != '\0') {
        return strdup(v);
    }
    return NULL;
}
