/* sim_options: option parsing, help texts and API keys (see sim_options.h). */
#include "sim_options.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "pw_env.h"

#define PW_SIM_MAX_RATE 100000.0
#define PW_SIM_MAX_DEVICES 1000000u
#define PW_SIM_MAX_BATCH 1000u
#define PW_SIM_MAX_KEYS 1024

static int pw_sim_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int pw_sim_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return PW_SIM_PARSE_ERROR;
}

/* Whole-string number within [min, max]; -1 on anything else. */
static int pw_sim_parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v) || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

static int pw_sim_parse_uint(const char *s, unsigned long long min, unsigned long long max,
                             unsigned long long *out)
{
    char *end;
    if (*s == '-' || *s == '+' || *s == '\0') {
        return -1;
    }
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

static int pw_sim_copy(char *dst, size_t n, const char *src)
{
    size_t len = strlen(src);
    if (len == 0 || len >= n) {
        return -1;
    }
    memcpy(dst, src, len + 1);
    return 0;
}

static int pw_sim_url_ok(const char *url)
{
    return strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0;
}

/* Copies url without trailing slashes. */
static int pw_sim_set_url(char *dst, size_t n, const char *url)
{
    if (!pw_sim_url_ok(url) || pw_sim_copy(dst, n, url) != 0) {
        return -1;
    }
    size_t len = strlen(dst);
    while (len > 8 && dst[len - 1] == '/') {
        dst[--len] = '\0';
    }
    return 0;
}

static int pw_sim_prefix_ok(const char *s)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");
    return n > 0 && n <= 32 && s[n] == '\0';
}

static void pw_sim_default_keys_file(char *dst, size_t n)
{
    const char *state = pw_env_str("PW_STATE", NULL);
    const char *root = pw_env_str("PW_ROOT", NULL);
    if (state) {
        snprintf(dst, n, "%s/secrets/gateway-keys", state);
    } else if (root) {
        snprintf(dst, n, "%s/.plantwatch/secrets/gateway-keys", root);
    } else {
        snprintf(dst, n, ".plantwatch/secrets/gateway-keys");
    }
}

static void pw_sim_run_defaults(pw_sim_run_opts *o)
{
    memset(o, 0, sizeof *o);
    const char *url = pw_env_str("PW_SIM_URL", PW_SIM_DEFAULT_URL);
    if (pw_sim_set_url(o->url, sizeof o->url, url) != 0) {
        snprintf(o->url, sizeof o->url, "%s", url); /* rejected below with a message */
    }
    o->devices = 50;
    snprintf(o->device_prefix, sizeof o->device_prefix, "dev");
    o->zones = 5;
    o->rate = 20;
    o->duration = 30;
    o->alert_share = 0.05;
    o->batch = 1;
    pw_sim_default_keys_file(o->keys_file, sizeof o->keys_file);
    o->progress = 5;
    o->key_limit = 5;
    o->timeout = 10;
    o->retries = 5;
    o->max_in_flight = 64;
}

enum {
    PW_OPT_DEVICES = 256,
    PW_OPT_ZONES,
    PW_OPT_RATE,
    PW_OPT_DURATION,
    PW_OPT_ALERT_SHARE,
    PW_OPT_BATCH,
    PW_OPT_KEYS_FILE,
    PW_OPT_URL,
    PW_OPT_SEED,
    PW_OPT_PROGRESS,
    PW_OPT_KEY_LIMIT,
    PW_OPT_TIMEOUT,
    PW_OPT_RETRIES,
    PW_OPT_MAX_IN_FLIGHT,
    PW_OPT_JSON,
    PW_OPT_METRICS_URL,
    PW_OPT_REQUIRE_DATA,
    PW_OPT_DEVICE_PREFIX,
    PW_OPT_HELP = 'h',
};

static const struct option pw_sim_run_longopts[] = {
    {"devices", required_argument, NULL, PW_OPT_DEVICES},
    {"device-prefix", required_argument, NULL, PW_OPT_DEVICE_PREFIX},
    {"zones", required_argument, NULL, PW_OPT_ZONES},
    {"rate", required_argument, NULL, PW_OPT_RATE},
    {"duration", required_argument, NULL, PW_OPT_DURATION},
    {"alert-share", required_argument, NULL, PW_OPT_ALERT_SHARE},
    {"batch", required_argument, NULL, PW_OPT_BATCH},
    {"keys-file", required_argument, NULL, PW_OPT_KEYS_FILE},
    {"url", required_argument, NULL, PW_OPT_URL},
    {"seed", required_argument, NULL, PW_OPT_SEED},
    {"progress", required_argument, NULL, PW_OPT_PROGRESS},
    {"key-limit", required_argument, NULL, PW_OPT_KEY_LIMIT},
    {"timeout", required_argument, NULL, PW_OPT_TIMEOUT},
    {"retries", required_argument, NULL, PW_OPT_RETRIES},
    {"max-in-flight", required_argument, NULL, PW_OPT_MAX_IN_FLIGHT},
    {"json", no_argument, NULL, PW_OPT_JSON},
    {"help", no_argument, NULL, PW_OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const struct option pw_sim_report_longopts[] = {
    {"metrics-url", required_argument, NULL, PW_OPT_METRICS_URL},
    {"timeout", required_argument, NULL, PW_OPT_TIMEOUT},
    {"require-data", no_argument, NULL, PW_OPT_REQUIRE_DATA},
    {"help", no_argument, NULL, PW_OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* getopt's message for an unknown option (opt '?') or a missing value (opt ':'). */
static int pw_sim_getopt_error(int opt, int argc, char **argv, char *err, size_t errlen)
{
    const char *arg = (optind >= 1 && optind - 1 < argc) ? argv[optind - 1] : "?";
    if (opt == ':') {
        return pw_sim_fail(err, errlen, "option '%s' needs a value", arg);
    }
    if (optopt > 0 && optopt < 128) {
        return pw_sim_fail(err, errlen, "unknown option '-%c'", optopt);
    }
    return pw_sim_fail(err, errlen, "unknown option '%s'", arg);
}

static int pw_sim_run_apply(pw_sim_run_opts *o, int opt, const char *v, char *err, size_t errlen)
{
    unsigned long long u;
    double d;
    switch (opt) {
    case PW_OPT_DEVICES:
        if (pw_sim_parse_uint(v, 1, PW_SIM_MAX_DEVICES, &u)) {
            return pw_sim_fail(err, errlen, "--devices: expected an integer 1..%u, got '%s'",
                               PW_SIM_MAX_DEVICES, v);
        }
        o->devices = (unsigned)u;
        break;
    case PW_OPT_DEVICE_PREFIX:
        if (!pw_sim_prefix_ok(v) || pw_sim_copy(o->device_prefix, sizeof o->device_prefix, v)) {
            return pw_sim_fail(err, errlen,
                               "--device-prefix: expected 1..32 of A-Z a-z 0-9 . _ -, got '%s'", v);
        }
        break;
    case PW_OPT_ZONES:
        if (pw_sim_parse_uint(v, 1, PW_SIM_MAX_DEVICES, &u)) {
            return pw_sim_fail(err, errlen, "--zones: expected an integer >= 1, got '%s'", v);
        }
        o->zones = (unsigned)u;
        break;
    case PW_OPT_RATE:
        if (pw_sim_parse_double(v, 0, PW_SIM_MAX_RATE, &d) || d <= 0) {
            return pw_sim_fail(err, errlen,
                               "--rate: expected messages/second > 0 and <= %.0f, got '%s'",
                               PW_SIM_MAX_RATE, v);
        }
        o->rate = d;
        break;
    case PW_OPT_DURATION:
        if (pw_sim_parse_double(v, 0, 31536000.0, &d)) {
            return pw_sim_fail(
                err, errlen, "--duration: expected seconds >= 0 (0 = until interrupted), got '%s'",
                v);
        }
        o->duration = d;
        break;
    case PW_OPT_ALERT_SHARE:
        if (pw_sim_parse_double(v, 0, 1, &d)) {
            return pw_sim_fail(err, errlen, "--alert-share: expected a fraction 0..1, got '%s'", v);
        }
        o->alert_share = d;
        break;
    case PW_OPT_BATCH:
        if (pw_sim_parse_uint(v, 1, PW_SIM_MAX_BATCH, &u)) {
            return pw_sim_fail(err, errlen, "--batch: expected an integer 1..%u, got '%s'",
                               PW_SIM_MAX_BATCH, v);
        }
        o->batch = (unsigned)u;
        break;
    case PW_OPT_KEYS_FILE:
        if (pw_sim_copy(o->keys_file, sizeof o->keys_file, v)) {
            return pw_sim_fail(err, errlen, "--keys-file: expected a path, got '%s'", v);
        }
        o->keys_file_set = 1;
        break;
    case PW_OPT_URL:
        if (pw_sim_set_url(o->url, sizeof o->url, v)) {
            return pw_sim_fail(err, errlen, "--url: expected http://host:port, got '%s'", v);
        }
        break;
    case PW_OPT_SEED:
        if (pw_sim_parse_uint(v, 0, UINT64_MAX, &u)) {
            return pw_sim_fail(err, errlen, "--seed: expected an unsigned integer, got '%s'", v);
        }
        o->seed = u;
        o->seed_set = 1;
        break;
    case PW_OPT_PROGRESS:
        if (pw_sim_parse_double(v, 0, 86400, &d)) {
            return pw_sim_fail(err, errlen, "--progress: expected seconds >= 0 (0 = off), got '%s'",
                               v);
        }
        o->progress = d;
        break;
    case PW_OPT_KEY_LIMIT:
        if (pw_sim_parse_double(v, 0, 100000, &d) || d <= 0) {
            return pw_sim_fail(err, errlen, "--key-limit: expected requests/second > 0, got '%s'",
                               v);
        }
        o->key_limit = d;
        break;
    case PW_OPT_TIMEOUT:
        if (pw_sim_parse_double(v, 0, 3600, &d) || d <= 0) {
            return pw_sim_fail(err, errlen, "--timeout: expected seconds > 0, got '%s'", v);
        }
        o->timeout = d;
        break;
    case PW_OPT_RETRIES:
        if (pw_sim_parse_uint(v, 0, 100, &u)) {
            return pw_sim_fail(err, errlen, "--retries: expected an integer 0..100, got '%s'", v);
        }
        o->retries = (unsigned)u;
        break;
    case PW_OPT_MAX_IN_FLIGHT:
        if (pw_sim_parse_uint(v, 1, 1024, &u)) {
            return pw_sim_fail(err, errlen,
                               "--max-in-flight: expected an integer 1..1024, got '%s'", v);
        }
        o->max_in_flight = (unsigned)u;
        break;
    case PW_OPT_JSON:
        o->json = 1;
        break;
    default:
        return pw_sim_fail(err, errlen, "unexpected option");
    }
    return PW_SIM_PARSE_OK;
}

int pw_sim_parse_run(int argc, char **argv, pw_sim_run_opts *o, char *err, size_t errlen)
{
    pw_sim_run_defaults(o);
    optind = 0; /* glibc: full reinitialisation, parsing may run more than once */
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "+:h", pw_sim_run_longopts, NULL)) != -1) {
        if (opt == PW_OPT_HELP) {
            return PW_SIM_PARSE_HELP;
        }
        if (opt == '?' || opt == ':') {
            return pw_sim_getopt_error(opt, argc, argv, err, errlen);
        }
        if (pw_sim_run_apply(o, opt, optarg, err, errlen) != PW_SIM_PARSE_OK) {
            return PW_SIM_PARSE_ERROR;
        }
    }
    if (optind < argc) {
        return pw_sim_fail(err, errlen, "unexpected argument '%s'", argv[optind]);
    }
    if (!pw_sim_url_ok(o->url)) {
        return pw_sim_fail(err, errlen, "PW_SIM_URL: expected http://host:port, got '%s'", o->url);
    }
    if (o->zones > o->devices) {
        return pw_sim_fail(err, errlen, "--zones (%u) cannot exceed --devices (%u)", o->zones,
                           o->devices);
    }
    return PW_SIM_PARSE_OK;
}

int pw_sim_parse_report(int argc, char **argv, pw_sim_report_opts *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    const char *url = pw_env_str("PW_SIM_METRICS_URL", PW_SIM_DEFAULT_METRICS_URL);
    if (pw_sim_set_url(o->url, sizeof o->url, url)) {
        return pw_sim_fail(err, errlen, "PW_SIM_METRICS_URL: expected http://host:port, got '%s'",
                           url);
    }
    o->timeout = 10;
    optind = 0;
    opterr = 0;
    int opt;
    double d;
    while ((opt = getopt_long(argc, argv, "+:h", pw_sim_report_longopts, NULL)) != -1) {
        switch (opt) {
        case PW_OPT_HELP:
            return PW_SIM_PARSE_HELP;
        case PW_OPT_METRICS_URL:
            if (pw_sim_set_url(o->url, sizeof o->url, optarg)) {
                return pw_sim_fail(err, errlen,
                                   "--metrics-url: expected http://host:port, got '%s'", optarg);
            }
            break;
        case PW_OPT_TIMEOUT:
            if (pw_sim_parse_double(optarg, 0, 3600, &d) || d <= 0) {
                return pw_sim_fail(err, errlen, "--timeout: expected seconds > 0, got '%s'",
                                   optarg);
            }
            o->timeout = d;
            break;
        case PW_OPT_REQUIRE_DATA:
            o->require_data = 1;
            break;
        default:
            return pw_sim_getopt_error(opt, argc, argv, err, errlen);
        }
    }
    if (optind < argc) {
        return pw_sim_fail(err, errlen, "unexpected argument '%s'", argv[optind]);
    }
    return PW_SIM_PARSE_OK;
}

void pw_sim_usage(FILE *out)
{
    fputs("usage: plantwatch-sim <mode> [options]\n"
          "\n"
          "Sensor simulator for plantwatch.\n"
          "\n"
          "modes:\n"
          "  run      simulate a fleet of devices sending readings and alerts through the gateway\n"
          "  report   print the analytics views of the metrics service as text tables\n"
          "\n"
          "`plantwatch-sim <mode> --help` documents each mode's options and environment.\n",
          out);
}

void pw_sim_run_help(FILE *out)
{
    fputs(
        "usage: plantwatch-sim run [options]\n"
        "\n"
        "Simulates --devices devices (dev-0001, dev-0002, ...) spread over --zones zones\n"
        "(zone-01, ...). Each device has one sensor (temperature in C, F or K; pressure in\n"
        "hPa, kPa or bar; humidity in %) and a firmware version. Together they send --rate\n"
        "messages per second: readings to POST /v1/telemetry and, for --alert-share of the\n"
        "messages, alerts (info/warning/critical; OVERHEAT, PRESSURE_DROP, VIBRATION_HIGH,\n"
        "SENSOR_FAULT) to POST /v1/alerts, through the gateway with the `apikey` header.\n"
        "Requests are spread over the API keys so that no key exceeds --key-limit\n"
        "requests/second; a 429 or 503 answer is retried after Retry-After with backoff.\n"
        "\n"
        "options:\n"
        "  --devices N        number of devices (default 50)\n"
        "  --device-prefix P  device ids are P-0001, P-0002, ... (default dev)\n"
        "  --zones M          number of zones, at most N (default 5)\n"
        "  --rate R           messages per second, all devices together (default 20)\n"
        "  --duration S       seconds to run; 0 = until SIGINT/SIGTERM (default 30)\n"
        "  --alert-share F    fraction of messages that are alerts, 0..1 (default 0.05)\n"
        "  --batch B          messages per request, 1..1000; B > 1 sends JSON arrays (default 1)\n"
        "  --keys-file PATH   API keys, one `<consumer> <key>` per line\n"
        "                     (default $PW_STATE/secrets/gateway-keys)\n"
        "  --url URL          gateway base URL (default $PW_SIM_URL or http://127.0.0.1:8000)\n"
        "  --seed N           seed of the device model and values; same seed, same messages\n"
        "                     (default: derived from the clock, printed in the summary)\n"
        "  --key-limit L      gateway limit per key, requests/second (default 5); keys are\n"
        "                     used with a 10% margin below it\n"
        "  --retries K        retries of a request answered 429 or 503 (default 5)\n"
        "  --timeout S        seconds per request (default 10)\n"
        "  --max-in-flight N  concurrent requests (default 64)\n"
        "  --progress S       seconds between progress lines on stderr; 0 = none (default 5)\n"
        "  --json             print the final summary as one JSON object\n"
        "  -h, --help         this help\n"
        "\n"
        "environment:\n"
        "  PW_SIM_URL         gateway base URL when --url is not given\n"
        "  PW_SIM_KEYS        comma-separated API keys \"k1,k2\", used when --keys-file is not "
        "given\n"
        "  PW_STATE           state directory holding secrets/gateway-keys\n"
        "                     (default $PW_ROOT/.plantwatch, else ./.plantwatch)\n"
        "\n"
        "If the keys cannot carry the rate at this batch size, a warning suggests a --batch\n"
        "and the run is capped at what the keys allow.\n"
        "Progress goes to stderr; the summary (sent, accepted, rejected, failed, rate) to\n"
        "stdout. accepted counts messages answered 202, rejected messages answered 4xx,\n"
        "failed messages answered 5xx or lost to network errors. SIGINT/SIGTERM stop sending,\n"
        "wait for requests in flight and print the summary; a second signal aborts them.\n"
        "\n"
        "exit status: 0 when every message was accepted, 1 when any was rejected or failed,\n"
        "2 on a usage or configuration error.\n",
        out);
}

void pw_sim_report_help(FILE *out)
{
    fputs("usage: plantwatch-sim report [options]\n"
          "\n"
          "Fetches the five analytics views from the metrics REST API and prints them as\n"
          "text tables: temperature by zone, alert breakdown, 7-day activity trend,\n"
          "firmware status and silent devices. A view that cannot be fetched or read is\n"
          "printed as `unavailable: <reason>`.\n"
          "\n"
          "options:\n"
          "  --metrics-url URL  metrics REST base URL\n"
          "                     (default $PW_SIM_METRICS_URL or http://127.0.0.1:8090)\n"
          "  --timeout S        seconds per request (default 10)\n"
          "  --require-data     also fail when temperature by zone has no zones yet\n"
          "  -h, --help         this help\n"
          "\n"
          "environment:\n"
          "  PW_SIM_METRICS_URL metrics REST base URL when --metrics-url is not given\n"
          "\n"
          "exit status: 0 when temperature by zone was printed (other views may be\n"
          "unavailable), 1 when it was not, 2 on a usage error.\n",
          out);
}

/* ---- API keys ---- */

static int pw_sim_keys_add(pw_sim_keys *k, const char *name, size_t name_len, const char *key,
                           size_t key_len, char *err, size_t errlen)
{
    if (k->len >= PW_SIM_MAX_KEYS) {
        return pw_sim_fail(err, errlen, "more than %d API keys", PW_SIM_MAX_KEYS);
    }
    if (name_len == 0 || name_len >= sizeof k->items[0].name || key_len == 0 ||
        key_len >= sizeof k->items[0].key) {
        return pw_sim_fail(err, errlen, "API key %zu: bad name or key length", k->len + 1);
    }
    pw_sim_key *items = realloc(k->items, (k->len + 1) * sizeof *items);
    if (!items) {
        return pw_sim_fail(err, errlen, "out of memory");
    }
    k->items = items;
    pw_sim_key *it = &k->items[k->len++];
    memcpy(it->name, name, name_len);
    it->name[name_len] = '\0';
    memcpy(it->key, key, key_len);
    it->key[key_len] = '\0';
    return 0;
}

static int pw_sim_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

int pw_sim_keys_parse_text(const char *text, pw_sim_keys *out, char *err, size_t errlen)
{
    int lineno = 0;
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        const char *end = eol ? eol : p + strlen(p);
        lineno++;
        while (p < end && pw_sim_is_space(*p)) {
            p++;
        }
        if (p < end && *p != '#') {
            const char *name = p;
            while (p < end && !pw_sim_is_space(*p)) {
                p++;
            }
            size_t name_len = (size_t)(p - name);
            while (p < end && pw_sim_is_space(*p)) {
                p++;
            }
            const char *key = p;
            while (p < end && !pw_sim_is_space(*p)) {
                p++;
            }
            size_t key_len = (size_t)(p - key);
            while (p < end && pw_sim_is_space(*p)) {
                p++;
            }
            if (key_len == 0 || p != end) {
                pw_sim_keys_free(out);
                return pw_sim_fail(err, errlen, "line %d: expected `<consumer> <key>`", lineno);
            }
            if (pw_sim_keys_add(out, name, name_len, key, key_len, err, errlen)) {
                pw_sim_keys_free(out);
                return PW_SIM_PARSE_ERROR;
            }
        }
        p = eol ? eol + 1 : end;
    }
    if (out->len == 0) {
        return pw_sim_fail(err, errlen, "no API keys");
    }
    return 0;
}

int pw_sim_keys_parse_list(const char *list, pw_sim_keys *out, char *err, size_t errlen)
{
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        while (p < end && pw_sim_is_space(*p)) {
            p++;
        }
        const char *e = end;
        while (e > p && pw_sim_is_space(e[-1])) {
            e--;
        }
        if (e > p) {
            char name[32];
            int n = snprintf(name, sizeof name, "key%zu", out->len + 1);
            if (pw_sim_keys_add(out, name, (size_t)n, p, (size_t)(e - p), err, errlen)) {
                pw_sim_keys_free(out);
                return PW_SIM_PARSE_ERROR;
            }
        }
        p = comma ? comma + 1 : end;
    }
    if (out->len == 0) {
        return pw_sim_fail(err, errlen, "no API keys");
    }
    return 0;
}

static char *pw_sim_read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        pw_sim_fail(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *nb = cap < (1u << 24) ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        pw_sim_fail(err, errlen, "%s: too large or out of memory", path);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

int pw_sim_keys_load(const pw_sim_run_opts *o, pw_sim_keys *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *env = pw_env_str("PW_SIM_KEYS", NULL);
    char why[256];
    if (!o->keys_file_set && env) {
        snprintf(out->source, sizeof out->source, "PW_SIM_KEYS");
        if (pw_sim_keys_parse_list(env, out, why, sizeof why)) {
            return pw_sim_fail(err, errlen, "PW_SIM_KEYS: %s", why);
        }
        return 0;
    }
    snprintf(out->source, sizeof out->source, "%s", o->keys_file);
    char *text = pw_sim_read_file(o->keys_file, err, errlen);
    if (!text) {
        return PW_SIM_PARSE_ERROR;
    }
    int rc = pw_sim_keys_parse_text(text, out, why, sizeof why);
    free(text);
    if (rc) {
        return pw_sim_fail(err, errlen, "%s: %s", o->keys_file, why);
    }
    return 0;
}

void pw_sim_keys_free(pw_sim_keys *k)
{
    free(k->items);
    k->items = NULL;
    k->len = 0;
}
