/* mx_fleet: the device fleet as the device census says — every device once,
 * with the zone and firmware of its newest record and its first and last
 * seen times, merged over the census shards of all partitions (a device's
 * telemetry and alerts partitions each have an entry; the newer wins, on a
 * tie the one of the greater "<topic>:<partition>"). Read by the firmware
 * and health views. */
#ifndef MX_FLEET_H
#define MX_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include "iot/v1/storage.pb-c.h"
#include "mx_store.h"

typedef struct {
    const char *device; /* point into the unpacked census messages */
    const char *zone;
    const char *firmware;
    const char *tp;
    int64_t first_ms, last_ms;
} mx_device;

typedef struct {
    mx_device *v;
    size_t n, cap;
    uint32_t *index; /* open addressing: index into v + 1, 0 = empty */
    size_t nindex;
    Iot__V1__DeviceCensus **shards; /* owned: the messages the strings point into */
    char **tps;                     /* owned: each shard's partition */
    size_t nshards, capshards;
} mx_fleet;

void mx_fleet_init(mx_fleet *f);
void mx_fleet_free(mx_fleet *f);

/* Merges the census shard m of partition tp (takes ownership of m; tp is
 * copied). 0, or -1 (ENOMEM, or columns that disagree in length or index
 * beyond their dictionaries). */
int mx_fleet_add_shard(mx_fleet *f, Iot__V1__DeviceCensus *m, const char *tp);

/* Reads every census document of the store into f, its query limited to the
 * computation's deadline_us (mx_store_deadline; 0 = none). 0, or a negative
 * MX_STORE_* with err. */
int mx_fleet_load(mx_store *store, mx_fleet *f, int64_t deadline_us, char *err, size_t errlen);

#endif
