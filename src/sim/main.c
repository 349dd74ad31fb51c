/* plantwatch-sim: entry point. Owns the process: the mode dispatch (run,
 * report), libcurl's global state, the signal handling that turns
 * SIGINT/SIGTERM into a graceful stop, and the exit status. */
#include <curl/curl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pw_time.h"
#include "sim_options.h"
#include "sim_report.h"
#include "sim_send.h"

#define PW_SIM_EXIT_USAGE 2

/* Signals received; the run loop reads it (1: stop sending, 2+: abort). */
static volatile sig_atomic_t pw_sim_signals;

static void pw_sim_on_signal(int sig)
{
    (void)sig;
    if (pw_sim_signals < 100) {
        pw_sim_signals++;
    }
}

static void pw_sim_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = pw_sim_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static uint64_t pw_sim_clock_seed(void)
{
    return (uint64_t)pw_now_ms() * 1000003ULL ^ (uint64_t)pw_monotonic_us() ^
           ((uint64_t)getpid() << 32);
}

static int pw_sim_cmd_run(int argc, char **argv)
{
    pw_sim_run_opts o;
    pw_sim_keys keys;
    pw_sim_stats stats;
    char err[512];
    int rc = pw_sim_parse_run(argc, argv, &o, err, sizeof err);
    if (rc == PW_SIM_PARSE_HELP) {
        pw_sim_run_help(stdout);
        return 0;
    }
    if (rc != PW_SIM_PARSE_OK) {
        fprintf(stderr, "plantwatch-sim run: %s (see plantwatch-sim run --help)\n", err);
        return PW_SIM_EXIT_USAGE;
    }
    if (!o.seed_set) {
        o.seed = pw_sim_clock_seed();
    }
    if (pw_sim_keys_load(&o, &keys, err, sizeof err) != 0) {
        fprintf(stderr, "plantwatch-sim run: API keys: %s (use --keys-file or PW_SIM_KEYS)\n", err);
        return PW_SIM_EXIT_USAGE;
    }
    pw_sim_install_signals();
    rc = pw_sim_run(&o, &keys, &pw_sim_signals, stderr, &stats, err, sizeof err);
    pw_sim_keys_free(&keys);
    if (rc != 0) {
        fprintf(stderr, "plantwatch-sim run: %s\n", err);
        return 1;
    }
    if (pw_sim_signals) {
        fprintf(stderr, "plantwatch-sim: stopped by a signal after %.1f s\n", stats.elapsed_s);
    }
    if (o.json) {
        pw_sim_stats_summary_json(&stats, stdout);
    } else {
        pw_sim_stats_summary(&stats, stdout);
    }
    return pw_sim_stats_exit_code(&stats);
}

static int pw_sim_cmd_report(int argc, char **argv)
{
    pw_sim_report_opts o;
    char err[512];
    int rc = pw_sim_parse_report(argc, argv, &o, err, sizeof err);
    if (rc == PW_SIM_PARSE_HELP) {
        pw_sim_report_help(stdout);
        return 0;
    }
    if (rc != PW_SIM_PARSE_OK) {
        fprintf(stderr, "plantwatch-sim report: %s (see plantwatch-sim report --help)\n", err);
        return PW_SIM_EXIT_USAGE;
    }
    return pw_sim_report(&o, stdout);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        pw_sim_usage(stderr);
        return PW_SIM_EXIT_USAGE;
    }
    const char *mode = argv[1];
    if (strcmp(mode, "-h") == 0 || strcmp(mode, "--help") == 0 || strcmp(mode, "help") == 0) {
        pw_sim_usage(stdout);
        return 0;
    }
    if (strcmp(mode, "--version") == 0) {
        printf("plantwatch-sim %s\n", PW_VERSION);
        return 0;
    }
    if (strcmp(mode, "run") != 0 && strcmp(mode, "report") != 0) {
        fprintf(stderr, "plantwatch-sim: unknown mode '%s'\n\n", mode);
        pw_sim_usage(stderr);
        return PW_SIM_EXIT_USAGE;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "plantwatch-sim: curl_global_init failed\n");
        return 1;
    }
    int rc = strcmp(mode, "run") == 0 ? pw_sim_cmd_run(argc - 1, argv + 1)
                                      : pw_sim_cmd_report(argc - 1, argv + 1);
    curl_global_cleanup();
    return rc;
}
