/* sim_options: command line and environment of plantwatch-sim. Owns option
 * parsing and validation for both modes (run, report), their --help texts,
 * and loading the API keys the simulator spreads its requests over. Parsing
 * never exits or prints: errors come back as a message for main to show. */
#ifndef PW_SIM_OPTIONS_H
#define PW_SIM_OPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PW_SIM_URL_MAX 512
#define PW_SIM_PATH_MAX 1024

#define PW_SIM_DEFAULT_URL "http://127.0.0.1:8000"
#define PW_SIM_DEFAULT_METRICS_URL "http://127.0.0.1:8090"

typedef enum { PW_SIM_PARSE_ERROR = -1, PW_SIM_PARSE_OK = 0, PW_SIM_PARSE_HELP = 1 } pw_sim_parse;

typedef struct {
    char url[PW_SIM_URL_MAX];
    unsigned devices;
    char device_prefix[33]; /* device ids are <prefix>-0001 … */
    unsigned zones;
    double rate;        /* messages per second, all devices together */
    double duration;    /* seconds; 0 = until SIGINT/SIGTERM */
    double alert_share; /* 0..1 */
    unsigned batch;     /* messages per request */
    char keys_file[PW_SIM_PATH_MAX];
    int keys_file_set; /* --keys-file given */
    uint64_t seed;
    int seed_set;
    double progress;  /* seconds between progress lines; 0 = none */
    double key_limit; /* gateway requests/second per key */
    double timeout;   /* seconds per request */
    unsigned retries; /* retries of a request answered 429/503 */
    unsigned max_in_flight;
    int json; /* summary as JSON */
} pw_sim_run_opts;

typedef struct {
    char url[PW_SIM_URL_MAX];
    double timeout;
    int require_data; /* temperature by zone must have at least one zone */
} pw_sim_report_opts;

/* argv[0] is the mode name ("run" / "report"). Defaults come from the
 * environment (PW_SIM_URL, PW_SIM_METRICS_URL, PW_STATE, PW_ROOT). */
int pw_sim_parse_run(int argc, char **argv, pw_sim_run_opts *o, char *err, size_t errlen);
int pw_sim_parse_report(int argc, char **argv, pw_sim_report_opts *o, char *err, size_t errlen);

void pw_sim_usage(FILE *out);
void pw_sim_run_help(FILE *out);
void pw_sim_report_help(FILE *out);

typedef struct {
    char name[64]; /* gateway consumer name (or key1, key2… from PW_SIM_KEYS) */
    char key[256];
} pw_sim_key;

typedef struct {
    pw_sim_key *items;
    size_t len;
    char source[PW_SIM_PATH_MAX + 16]; /* where the keys came from, for messages */
} pw_sim_keys;

/* Lines "<consumer> <key>"; blank lines and lines starting with # skipped. */
int pw_sim_keys_parse_text(const char *text, pw_sim_keys *out, char *err, size_t errlen);
int pw_sim_keys_parse_list(const char *list, pw_sim_keys *out, char *err, size_t errlen);
/* --keys-file when given, else PW_SIM_KEYS, else the default keys file. */
int pw_sim_keys_load(const pw_sim_run_opts *o, pw_sim_keys *out, char *err, size_t errlen);
void pw_sim_keys_free(pw_sim_keys *k);

#endif
