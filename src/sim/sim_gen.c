/* sim_gen: device model and message generator (see sim_gen.h). */
#include "sim_gen.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_time.h"

const char *const pw_sim_firmware_versions[PW_SIM_FIRMWARE_COUNT] = {"2.4.1", "2.3.0", "2.1.5"};
static const double pw_sim_firmware_weights[PW_SIM_FIRMWARE_COUNT] = {0.70, 0.20, 0.10};

static const char *const pw_sim_severities[] = {"info", "warning", "critical"};
static const double pw_sim_severity_weights[] = {0.50, 0.35, 0.15};

/* ---- random numbers: xoshiro256** seeded through splitmix64 ---- */

static uint64_t pw_sim_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void pw_sim_rng_seed(pw_sim_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        r->s[i] = pw_sim_splitmix64(&seed);
    }
}

static uint64_t pw_sim_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t pw_sim_rng_next(pw_sim_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = pw_sim_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = pw_sim_rotl(s[3], 45);
    return result;
}

double pw_sim_rng_uniform(pw_sim_rng *r)
{
    return (double)(pw_sim_rng_next(r) >> 11) * 0x1.0p-53;
}

double pw_sim_rng_gauss(pw_sim_rng *r)
{
    /* Box-Muller; u1 in (0, 1] so the log is finite. */
    double u1 = 1.0 - pw_sim_rng_uniform(r);
    double u2 = pw_sim_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static size_t pw_sim_pick(pw_sim_rng *r, const double *weights, size_t n)
{
    double u = pw_sim_rng_uniform(r), acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc += weights[i];
        if (u < acc) {
            return i;
        }
    }
    return n - 1;
}

static double pw_sim_round(double v, int decimals)
{
    double m = pow(10.0, decimals);
    return round(v * m) / m;
}

/* ---- device table ---- */

static void pw_sim_device_sensor(pw_sim_rng *r, pw_sim_device *d, size_t zone_index, size_t in_zone)
{
    static const double sensor_w[] = {0.50, 0.25, 0.25};
    static const char *const temp_units[] = {"C", "F", "K"};
    static const double temp_w[] = {0.80, 0.10, 0.10};
    static const char *const press_units[] = {"hPa", "kPa", "bar"};
    static const double press_w[] = {0.60, 0.25, 0.15};

    d->sensor = in_zone == 0 ? PW_SIM_TEMPERATURE : (pw_sim_sensor)pw_sim_pick(r, sensor_w, 3);
    switch (d->sensor) {
    case PW_SIM_TEMPERATURE:
        d->type = "temperature";
        d->unit = temp_units[pw_sim_pick(r, temp_w, 3)];
        /* zones run from cool storage to warm process halls: 16..32 °C */
        d->base = 16.0 + 4.0 * (double)(zone_index % 5) + 1.5 * pw_sim_rng_gauss(r);
        break;
    case PW_SIM_PRESSURE:
        d->type = "pressure";
        d->unit = press_units[pw_sim_pick(r, press_w, 3)];
        d->base = 1013.25 + 6.0 * pw_sim_rng_gauss(r);
        break;
    default:
        d->type = "humidity";
        d->unit = "%";
        d->base = 30.0 + 35.0 * pw_sim_rng_uniform(r);
        break;
    }
    d->value = d->base;
}

int pw_sim_fleet_init(pw_sim_fleet *f, size_t ndevices, size_t nzones, uint64_t seed)
{
    return pw_sim_fleet_init_prefix(f, "dev", ndevices, nzones, seed);
}

int pw_sim_fleet_init_prefix(pw_sim_fleet *f, const char *prefix, size_t ndevices, size_t nzones,
                             uint64_t seed)
{
    memset(f, 0, sizeof *f);
    if (ndevices == 0 || nzones == 0 || nzones > ndevices || strlen(prefix) > 32 ||
        ndevices > 1000000) {
        return -1;
    }
    f->devices = calloc(ndevices, sizeof *f->devices);
    if (!f->devices) {
        return -1;
    }
    f->ndevices = ndevices;
    f->nzones = nzones;
    pw_sim_rng_seed(&f->rng, seed);
    for (size_t i = 0; i < ndevices; i++) {
        pw_sim_device *d = &f->devices[i];
        size_t zone = i % nzones;
        snprintf(d->id, sizeof d->id, "%.32s-%04zu", prefix, i + 1);
        snprintf(d->zone, sizeof d->zone, "zone-%02zu", zone + 1);
        d->firmware = pw_sim_firmware_versions[pw_sim_pick(&f->rng, pw_sim_firmware_weights,
                                                           PW_SIM_FIRMWARE_COUNT)];
        pw_sim_device_sensor(&f->rng, d, zone, i / nzones);
    }
    f->alert_credit = pw_sim_rng_uniform(&f->rng);
    return 0;
}

void pw_sim_fleet_free(pw_sim_fleet *f)
{
    free(f->devices);
    f->devices = NULL;
    f->ndevices = 0;
}

/* ---- values ---- */

double pw_sim_to_unit(pw_sim_sensor sensor, const char *unit, double canonical)
{
    if (sensor == PW_SIM_TEMPERATURE) {
        if (strcmp(unit, "F") == 0) {
            return canonical * 9.0 / 5.0 + 32.0;
        }
        if (strcmp(unit, "K") == 0) {
            return canonical + 273.15;
        }
    } else if (sensor == PW_SIM_PRESSURE) {
        if (strcmp(unit, "kPa") == 0) {
            return canonical / 10.0;
        }
        if (strcmp(unit, "bar") == 0) {
            return canonical / 1000.0;
        }
    }
    return canonical;
}

static int pw_sim_unit_decimals(const char *unit)
{
    if (strcmp(unit, "bar") == 0) {
        return 4;
    }
    if (strcmp(unit, "kPa") == 0 || strcmp(unit, "K") == 0) {
        return 2;
    }
    return 1;
}

/* Mean-reverting random walk around the device's set point. */
static void pw_sim_device_step(pw_sim_rng *r, pw_sim_device *d)
{
    static const double noise[] = {0.4, 1.2, 1.5};
    d->value += 0.3 * (d->base - d->value) + noise[d->sensor] * pw_sim_rng_gauss(r);
    if (d->sensor == PW_SIM_HUMIDITY) {
        d->value = fmin(100.0, fmax(0.0, d->value));
    }
}

static void pw_sim_set_ts(json_t *obj, int64_t now_ms)
{
    char ts[PW_RFC3339_LEN];
    pw_time_format_rfc3339(now_ms, ts);
    json_object_set_new(obj, "ts", json_string(ts));
}

json_t *pw_sim_next_reading(pw_sim_fleet *f, int64_t now_ms)
{
    pw_sim_device *d = &f->devices[f->cursor];
    f->cursor = (f->cursor + 1) % f->ndevices;
    pw_sim_device_step(&f->rng, d);
    double v =
        pw_sim_round(pw_sim_to_unit(d->sensor, d->unit, d->value), pw_sim_unit_decimals(d->unit));
    json_t *o = json_object();
    json_object_set_new(o, "device_id", json_string(d->id));
    json_object_set_new(o, "zone", json_string(d->zone));
    json_object_set_new(o, "type", json_string(d->type));
    json_object_set_new(o, "value", json_real(v));
    json_object_set_new(o, "unit", json_string(d->unit));
    pw_sim_set_ts(o, now_ms);
    json_object_set_new(o, "firmware", json_string(d->firmware));
    return o;
}

/* Alert code fitting the device's sensor. */
static const char *pw_sim_alert_code(pw_sim_rng *r, const pw_sim_device *d)
{
    double u = pw_sim_rng_uniform(r);
    if (d->sensor == PW_SIM_TEMPERATURE && u < 0.6) {
        return "OVERHEAT";
    }
    if (d->sensor == PW_SIM_PRESSURE && u < 0.6) {
        return "PRESSURE_DROP";
    }
    return pw_sim_rng_uniform(r) < 0.6 ? "VIBRATION_HIGH" : "SENSOR_FAULT";
}

static void pw_sim_alert_message(const pw_sim_device *d, const char *code, char *out, size_t n)
{
    if (strcmp(code, "OVERHEAT") == 0) {
        snprintf(out, n, "temperature %.1f C above the %.1f C limit", d->base + 12.0,
                 d->base + 10.0);
    } else if (strcmp(code, "PRESSURE_DROP") == 0) {
        snprintf(out, n, "pressure fell to %.1f hPa", d->base - 40.0);
    } else if (strcmp(code, "VIBRATION_HIGH") == 0) {
        snprintf(out, n, "vibration above threshold on %s", d->id);
    } else {
        snprintf(out, n, "%s sensor on %s not responding", d->type, d->id);
    }
}

json_t *pw_sim_next_alert(pw_sim_fleet *f, int64_t now_ms)
{
    pw_sim_device *d = &f->devices[pw_sim_rng_next(&f->rng) % f->ndevices];
    const char *severity = pw_sim_severities[pw_sim_pick(&f->rng, pw_sim_severity_weights, 3)];
    const char *code = pw_sim_alert_code(&f->rng, d);
    char msg[160];
    pw_sim_alert_message(d, code, msg, sizeof msg);
    json_t *o = json_object();
    json_object_set_new(o, "device_id", json_string(d->id));
    json_object_set_new(o, "zone", json_string(d->zone));
    json_object_set_new(o, "severity", json_string(severity));
    json_object_set_new(o, "code", json_string(code));
    json_object_set_new(o, "message", json_string(msg));
    pw_sim_set_ts(o, now_ms);
    json_object_set_new(o, "firmware", json_string(d->firmware));
    return o;
}

pw_sim_kind pw_sim_next_kind(pw_sim_fleet *f, double alert_share)
{
    if (!(alert_share > 0)) {
        return PW_SIM_KIND_READINGS;
    }
    f->alert_credit += alert_share;
    if (f->alert_credit >= 1.0) {
        f->alert_credit -= 1.0;
        return PW_SIM_KIND_ALERTS;
    }
    return PW_SIM_KIND_READINGS;
}

json_t *pw_sim_next_body(pw_sim_fleet *f, pw_sim_kind kind, unsigned batch, int64_t now_ms)
{
    if (batch <= 1) {
        return kind == PW_SIM_KIND_ALERTS ? pw_sim_next_alert(f, now_ms)
                                          : pw_sim_next_reading(f, now_ms);
    }
    json_t *arr = json_array();
    for (unsigned i = 0; i < batch; i++) {
        json_array_append_new(arr, kind == PW_SIM_KIND_ALERTS ? pw_sim_next_alert(f, now_ms)
                                                              : pw_sim_next_reading(f, now_ms));
    }
    return arr;
}
