/* presence: rollup_device_day — one document per device and UTC day it was
 * active, {_id: "<day>|<device>", day, start, device, zone, origin},
 * inserted once. The delivery whose insert succeeded is the one that adds the
 * device to its buckets' active devices (new_device). A duplicate key means
 * another delivery did, except after a crash between the insert and the
 * rollups: a duplicate of a delivery above its partition's settled mark is
 * read by _id, and if the stored origin is one of this batch's deliveries,
 * that delivery is the one (see store_int.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dedupe.h"
#include "pw_schema.h"
#include "rollup.h"
#include "store_int.h"

typedef struct {
    char key[PWC_ROLLUP_KEY_LEN];
    size_t owner; /* entry index */
    int dup;
} presence_key;

/* The batch's device-day keys not known to be stored, each with the entry
 * that would insert it (the first contributing one, else the first). */
static size_t presence_keys(pwc_store *s, const pwc_entry *entries, size_t n, presence_key *out)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        char key[PWC_ROLLUP_KEY_LEN];
        if (pwc_device_day_key(entries[i].rec, key, sizeof(key)) != 0 ||
            pwc_cache_get(s->presence, key)) {
            continue;
        }
        size_t q = 0;
        while (q < m && strcmp(out[q].key, key) != 0) {
            q++;
        }
        if (q < m) {
            if (!entries[out[q].owner].contributes && entries[i].contributes) {
                out[q].owner = i;
            }
            continue;
        }
        memcpy(out[m].key, key, sizeof(key));
        out[m].owner = i;
        out[m].dup = 0;
        m++;
    }
    return m;
}

/* The presence document that delivery e inserts (a pwc_doc_builder). */
static void presence_doc(const pwc_entry *e, bson_t *doc)
{
    char key[PWC_ROLLUP_KEY_LEN], origin[PWC_ORIGIN_LEN];
    pwc_device_day_key(e->rec, key, sizeof(key)); /* fits: checked by presence_keys */
    pwc_origin_format(e->topic, e->partition, e->offset, origin, sizeof(origin));
    bson_init(doc);
    BSON_APPEND_UTF8(doc, PW_F_ID, key);
    BSON_APPEND_UTF8(doc, PW_F_DAY, e->rec->day);
    BSON_APPEND_DATE_TIME(doc, PW_F_START, e->rec->hour_ms - e->rec->hour_ms % 86400000LL);
    BSON_APPEND_UTF8(doc, PW_F_DEVICE, e->rec->device);
    BSON_APPEND_UTF8(doc, PW_F_ZONE, e->rec->zone);
    BSON_APPEND_UTF8(doc, PW_F_ORIGIN, origin);
}

static int presence_insert(pwc_store *s, mongoc_database_t *db, const pwc_entry *entries, size_t n,
                           presence_key *keys, size_t m, char *err, size_t errlen)
{
    size_t *owners = malloc(m * sizeof(size_t));
    int *state = calloc(n, sizeof(int));
    int rc = owners && state ? 0 : -1;
    for (size_t q = 0; rc == 0 && q < m; q++) {
        owners[q] = keys[q].owner;
    }
    if (rc == 0) {
        rc = pwc_insert_docs(s, db, PW_COLL_DEVICE_DAY, presence_doc, entries, owners, m, state,
                             err, errlen);
    }
    for (size_t q = 0; rc == 0 && q < m; q++) {
        keys[q].dup = state[keys[q].owner] == PWC_GATE_DUP;
    }
    free(owners);
    free(state);
    return rc;
}

typedef struct {
    pwc_entry *entries;
    size_t n;
} owner_ctx;

/* A stored presence origin that is one of this batch's deliveries of that
 * device-day makes that delivery the one that adds the device. */
static void presence_origin_seen(void *vctx, const char *key, const bson_t *doc)
{
    owner_ctx *c = vctx;
    const char *origin = pw_store_str(doc, PW_F_ORIGIN);
    char k[PWC_ROLLUP_KEY_LEN];
    for (size_t i = 0; i < c->n; i++) {
        pwc_entry *e = &c->entries[i];
        if (pwc_dedupe_is_own(e, origin) && pwc_device_day_key(e->rec, k, sizeof(k)) == 0 &&
            strcmp(k, key) == 0) {
            e->new_device = 1;
        }
    }
}

/* 1 when a delivery of the batch with this device-day key is above its
 * partition's settled mark (prog is loaded). */
static int key_uncertain(const pwc_entry *entries, size_t n, const char *key,
                         pwc_progress_set *prog)
{
    for (size_t i = 0; i < n; i++) {
        char k[PWC_ROLLUP_KEY_LEN];
        const pwc_tp_progress *t = pwc_progress_get(prog, entries[i].topic, entries[i].partition);
        if (entries[i].offset > t->settled &&
            pwc_device_day_key(entries[i].rec, k, sizeof(k)) == 0 && strcmp(k, key) == 0) {
            return 1;
        }
    }
    return 0;
}

static int presence_resolve(pwc_store *s, mongoc_database_t *db, pwc_entry *entries, size_t n,
                            const presence_key *keys, size_t m, pwc_progress_set *prog, char *err,
                            size_t errlen)
{
    const char **ids = malloc((m ? m : 1) * sizeof(char *));
    if (!ids) {
        return -1;
    }
    size_t u = 0;
    for (size_t q = 0; q < m; q++) {
        if (keys[q].dup && key_uncertain(entries, n, keys[q].key, prog)) {
            ids[u++] = keys[q].key;
        }
    }
    owner_ctx c = {entries, n};
    int rc = pwc_find_ids(s, db, PW_COLL_DEVICE_DAY, ids, u, PW_F_ORIGIN, presence_origin_seen, &c,
                          "presence origin", err, errlen);
    free(ids);
    return rc;
}

int pwc_presence_write(pwc_store *s, mongoc_database_t *db, pwc_entry *entries, size_t n,
                       pwc_progress_set *prog, char *err, size_t errlen)
{
    presence_key *keys = malloc((n ? n : 1) * sizeof(*keys));
    if (!keys) {
        return -1;
    }
    size_t m = presence_keys(s, entries, n, keys);
    int rc = m ? presence_insert(s, db, entries, n, keys, m, err, errlen) : 0;
    int any_dup = 0;
    for (size_t q = 0; rc == 0 && q < m; q++) {
        if (keys[q].dup) {
            any_dup = 1;
        } else {
            entries[keys[q].owner].new_device = 1;
        }
    }
    if (rc == 0 && any_dup) {
        rc = pwc_progress_read(s, db, prog, err, errlen);
        if (rc == 0) {
            rc = presence_resolve(s, db, entries, n, keys, m, prog, err, errlen);
        }
    }
    free(keys);
    return rc;
}

void pwc_presence_remember(pwc_store *s, const pwc_entry *entries, size_t n)
{
    const char none = 0;
    char key[PWC_ROLLUP_KEY_LEN];
    for (size_t i = 0; i < n; i++) {
        if (pwc_device_day_key(entries[i].rec, key, sizeof(key)) == 0) {
            pwc_cache_put(s->presence, key, &none);
        }
    }
}
