/* cache: a bounded string-keyed map of fixed-size values, owned by one
 * thread. The consumer keeps in it what it knows the store holds (bucket
 * states, device-day presence), so the write path reads the store only on a
 * miss. When full it forgets everything: a miss costs one read, never
 * correctness. */
#ifndef PWC_CACHE_H
#define PWC_CACHE_H

#include <stddef.h>

typedef struct pwc_cache pwc_cache;

/* Called on a value the cache lets go of (removed, replaced, forgotten). */
typedef void (*pwc_cache_drop_fn)(void *value);

/* NULL on ENOMEM. max_entries > 0; drop may be NULL. */
pwc_cache *pwc_cache_new(size_t max_entries, size_t value_size, pwc_cache_drop_fn drop);
void pwc_cache_free(pwc_cache *c);

/* The value stored under key, or NULL. */
void *pwc_cache_get(pwc_cache *c, const char *key);
/* Stores a copy of value under key (replacing, after dropping the old one).
 * 0, or -1 (ENOMEM: the value is not stored and not dropped). */
int pwc_cache_put(pwc_cache *c, const char *key, const void *value);
void pwc_cache_remove(pwc_cache *c, const char *key);
void pwc_cache_clear(pwc_cache *c);
/* Forgets everything unless n more entries fit. */
void pwc_cache_reserve(pwc_cache *c, size_t n);
size_t pwc_cache_count(const pwc_cache *c);

#endif
