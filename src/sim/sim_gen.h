/* sim_gen: the simulated fleet. Owns the seeded random generator, the
 * device table (stable ids, zone, sensor, unit, firmware) and the readings
 * and alerts those devices produce, as JSON in the ingest wire format. Given
 * the same seed and the same timestamps, the output is byte-identical. */
#ifndef PW_SIM_GEN_H
#define PW_SIM_GEN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Number formatting for request bodies (shortest round-trip of the rounded values). */
#define PW_SIM_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(10))

typedef struct {
    uint64_t s[4];
} pw_sim_rng;

void pw_sim_rng_seed(pw_sim_rng *r, uint64_t seed);
uint64_t pw_sim_rng_next(pw_sim_rng *r);
double pw_sim_rng_uniform(pw_sim_rng *r); /* [0, 1) */
double pw_sim_rng_gauss(pw_sim_rng *r);   /* standard normal */

typedef enum { PW_SIM_TEMPERATURE = 0, PW_SIM_PRESSURE, PW_SIM_HUMIDITY } pw_sim_sensor;
typedef enum { PW_SIM_KIND_READINGS = 0, PW_SIM_KIND_ALERTS } pw_sim_kind;

/* Firmware versions in the fleet, newest first; most devices run the newest. */
#define PW_SIM_FIRMWARE_COUNT 3
extern const char *const pw_sim_firmware_versions[PW_SIM_FIRMWARE_COUNT];

typedef struct {
    char id[48];          /* dev-0001 … */
    char zone[32];        /* zone-01 … */
    const char *firmware; /* one of pw_sim_firmware_versions */
    pw_sim_sensor sensor;
    const char *type; /* "temperature" | "pressure" | "humidity" */
    const char *unit; /* C F K | hPa kPa bar | % */
    double base;      /* set point in the canonical unit (°C, hPa, %) */
    double value;     /* current value in the canonical unit */
} pw_sim_device;

typedef struct {
    pw_sim_rng rng;
    pw_sim_device *devices;
    size_t ndevices;
    size_t nzones;
    size_t cursor;       /* device of the next reading (round robin) */
    double alert_credit; /* error diffusion of the alert share over requests */
} pw_sim_fleet;

/* Builds ndevices devices over nzones zones (1 <= nzones <= ndevices).
 * The first device of every zone measures temperature. Returns 0 or -1. */
int pw_sim_fleet_init(pw_sim_fleet *f, size_t ndevices, size_t nzones, uint64_t seed);
/* Same with device ids <prefix>-0001 … (prefix at most 32 characters). */
int pw_sim_fleet_init_prefix(pw_sim_fleet *f, const char *prefix, size_t ndevices, size_t nzones,
                             uint64_t seed);
void pw_sim_fleet_free(pw_sim_fleet *f);

/* Next reading (devices in turn) / alert (random device), ts = now_ms. New reference. */
json_t *pw_sim_next_reading(pw_sim_fleet *f, int64_t now_ms);
json_t *pw_sim_next_alert(pw_sim_fleet *f, int64_t now_ms);

/* Kind of the next request: over many requests the share of alert requests
 * equals alert_share (0..1), spread evenly, with a seeded phase. */
pw_sim_kind pw_sim_next_kind(pw_sim_fleet *f, double alert_share);

/* A request body: one object when batch == 1, else an array of batch items. */
json_t *pw_sim_next_body(pw_sim_fleet *f, pw_sim_kind kind, unsigned batch, int64_t now_ms);

/* Unit conversion of canonical values (°C, hPa) into a device's unit. */
double pw_sim_to_unit(pw_sim_sensor sensor, const char *unit, double canonical);

#endif
