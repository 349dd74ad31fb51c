/* pw_pipeline: the latency histogram of the pipeline marks (see pw_pipeline.h). */
#include "pw_pipeline.h"

#include <math.h>
#include <string.h>

double pw_lat_lower(int i)
{
    if (i <= 0) {
        return 0.0;
    }
    return exp2((double)(i - 1) / PW_LAT_STEPS_PER_DOUBLING);
}

double pw_lat_upper(int i)
{
    if (i >= PW_LAT_BUCKETS - 1) {
        return pw_lat_lower(PW_LAT_BUCKETS - 1);
    }
    return exp2((double)i / PW_LAT_STEPS_PER_DOUBLING);
}

int pw_lat_bucket(int64_t ms)
{
    if (ms < 1) {
        return 0;
    }
    int i = (int)floor(PW_LAT_STEPS_PER_DOUBLING * log2((double)ms)) + 1;
    /* log2 may round across a bound: settle on the bucket whose bounds hold ms */
    while (i > 1 && (double)ms < pw_lat_lower(i)) {
        i--;
    }
    while (i < PW_LAT_BUCKETS - 1 && (double)ms >= pw_lat_upper(i)) {
        i++;
    }
    return i > PW_LAT_BUCKETS - 1 ? PW_LAT_BUCKETS - 1 : i;
}

void pw_lat_add(pw_lat_hist *h, int64_t ms, uint64_t n)
{
    h->counts[pw_lat_bucket(ms)] += n;
    h->total += n;
}

void pw_lat_merge(pw_lat_hist *into, const pw_lat_hist *from)
{
    for (int i = 0; i < PW_LAT_BUCKETS; i++) {
        into->counts[i] += from->counts[i];
    }
    into->total += from->total;
}

size_t pw_lat_pack(const pw_lat_hist *h, uint8_t *out)
{
    int used = PW_LAT_BUCKETS;
    while (used > 0 && h->counts[used - 1] == 0) {
        used--;
    }
    for (int i = 0; i < used; i++) {
        uint64_t c = h->counts[i] > UINT32_MAX ? UINT32_MAX : h->counts[i];
        for (int b = 0; b < 4; b++) {
            out[i * 4 + b] = (uint8_t)(c >> (8 * b));
        }
    }
    return (size_t)used * 4;
}

int pw_lat_unpack_add(pw_lat_hist *h, const uint8_t *buf, size_t len)
{
    if (len % 4 != 0 || len > PW_LAT_PACKED_MAX) {
        return -1;
    }
    for (size_t i = 0; i < len / 4; i++) {
        uint64_t c = 0;
        for (int b = 0; b < 4; b++) {
            c |= (uint64_t)buf[i * 4 + (size_t)b] << (8 * b);
        }
        h->counts[i] += c;
        h->total += c;
    }
    return 0;
}

double pw_lat_quantile(const pw_lat_hist *h, double q)
{
    if (h->total == 0) {
        return 0.0;
    }
    uint64_t rank = (uint64_t)ceil(q * (double)h->total);
    if (rank < 1) {
        rank = 1;
    }
    uint64_t seen = 0;
    for (int i = 0; i < PW_LAT_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            if (i == 0) {
                return 0.5;
            }
            if (i == PW_LAT_BUCKETS - 1) {
                return pw_lat_lower(i);
            }
            return sqrt(pw_lat_lower(i) * pw_lat_upper(i));
        }
    }
    return pw_lat_lower(PW_LAT_BUCKETS - 1);
}

static void pw_lat_entry(const bson_iter_t *arr, pw_lat_entry_fn fn, void *ctx)
{
    bson_iter_t ent;
    if (!BSON_ITER_HOLDS_DOCUMENT(arr) || !bson_iter_recurse(arr, &ent)) {
        return;
    }
    int64_t minute = 0;
    const uint8_t *h = NULL;
    uint32_t hlen = 0;
    while (bson_iter_next(&ent)) {
        if (strcmp(bson_iter_key(&ent), PW_F_MINUTE) == 0 && BSON_ITER_HOLDS_DATE_TIME(&ent)) {
            minute = bson_iter_date_time(&ent);
        } else if (strcmp(bson_iter_key(&ent), PW_F_HIST) == 0 && BSON_ITER_HOLDS_BINARY(&ent)) {
            bson_subtype_t st;
            bson_iter_binary(&ent, &st, &hlen, &h);
        }
    }
    if (minute > 0 && minute % 60000 == 0 && h != NULL) {
        fn(ctx, minute, h, hlen);
    }
}

void pw_lat_each(const bson_t *doc, pw_lat_entry_fn fn, void *ctx)
{
    bson_iter_t it, arr;
    if (!bson_iter_init_find(&it, doc, PW_F_LATENCY) || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &arr)) {
        return;
    }
    while (bson_iter_next(&arr)) {
        pw_lat_entry(&arr, fn, ctx);
    }
}
