/* dedupe: gate, origin and guard decisions (see dedupe.h). */
#include "dedupe.h"

#include <string.h>

size_t pwc_dedupe_gate(pwc_entry *entries, size_t n, const int *gate, pwc_settled_fn settled,
                       void *ctx, size_t *uncertain)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        entries[i].contributes = gate[i] == PWC_GATE_NEW;
        if (gate[i] == PWC_GATE_DUP &&
            entries[i].offset > settled(ctx, entries[i].topic, entries[i].partition)) {
            uncertain[m++] = i;
        }
    }
    return m;
}

int pwc_dedupe_is_own(const pwc_entry *e, const char *stored_origin)
{
    if (!stored_origin) {
        return 0;
    }
    char mine[PWC_ORIGIN_LEN];
    pwc_origin_format(e->topic, e->partition, e->offset, mine, sizeof(mine));
    return strcmp(mine, stored_origin) == 0;
}

pwc_guard_outcome pwc_guard_outcome_of(size_t expected, int64_t matched, size_t dup_inserts,
                                       int refused, int failed)
{
    if (refused) {
        return PWC_GUARD_LOST;
    }
    if (failed) {
        return PWC_GUARD_FAILED;
    }
    if (dup_inserts > 0 || matched < (int64_t)expected) {
        return PWC_GUARD_LOST;
    }
    return PWC_GUARD_LANDED;
}
