/* mx_cache: a small response cache for the views with single flight. An
 * answer (packed protobuf) is fresh for ttl_ms after it was computed. Only
 * one thread computes a key at a time: meanwhile other requests for that key
 * get the previous answer, or wait for the first one. Once an answer is
 * older than ttl_ms, the next request gets it at once while a background
 * thread computes its successor (stale while revalidate), so only the very
 * first request for a key waits for the store. A stale answer is served only
 * while it is younger than 5 × ttl_ms; after a quiet period the request
 * computes. ttl_ms 0 disables caching (every request computes). Thread-safe. */
#ifndef MX_CACHE_H
#define MX_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct mx_cache mx_cache;

/* Computes the answer for a key: 0 with a malloc'd buffer, or a negative
 * value with err (returned by mx_cache_get as is). background is 1 in a
 * refresh of a stale answer (nobody waits for it), 0 in a request. */
typedef int (*mx_cache_compute_fn)(void *ctx, int background, uint8_t **buf, size_t *len, char *err,
                                   size_t errlen);

mx_cache *mx_cache_new(int64_t ttl_ms, size_t capacity);
void mx_cache_free(mx_cache *c);

/* A malloc'd copy of the answer for key (cached, or computed now by fn).
 * *hit tells whether it came from the cache. A background refresh calls fn
 * on a copy of the ctx_size bytes at ctx, so ctx must be self-contained
 * (ctx_size 0: refreshes run in the request, as on a miss). 0, or fn's
 * negative result with err (failures are not cached; a failed refresh
 * leaves the stale answer in place). */
int mx_cache_get(mx_cache *c, const char *key, mx_cache_compute_fn fn, void *ctx, size_t ctx_size,
                 uint8_t **out, size_t *outlen, int *hit, char *err, size_t errlen);

#endif
