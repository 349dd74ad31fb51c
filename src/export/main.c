/* plantwatch-export: entry point. Owns the process: the command line, the
 * configuration (PW_METRICS_URL, the read key), the output file (written as
 * FILE.part and renamed only when the export is complete) and the exit
 * status (ex_args.h). */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ex_args.h"
#include "ex_fetch.h"
#include "ex_key.h"
#include "pw_env.h"

static int ex_main_export(const ex_args *a, const char *url, const char *key)
{
    int csv = a->format == NULL || strcmp(a->format, "csv") == 0;
    if (a->output == NULL) {
        return ex_fetch_run(url, key, stdout, stderr, a->quiet, csv);
    }
    size_t n = strlen(a->output) + 6;
    char *part = malloc(n);
    if (part == NULL) {
        return EX_EXIT_OUTPUT;
    }
    snprintf(part, n, "%s.part", a->output);
    FILE *f = fopen(part, "wb");
    if (f == NULL) {
        fprintf(stderr, "plantwatch-export: cannot open %s for writing\n", part);
        free(part);
        return EX_EXIT_OUTPUT;
    }
    int rc = ex_fetch_run(url, key, f, stderr, a->quiet, csv);
    if (fclose(f) != 0 && rc == EX_EXIT_OK) {
        rc = EX_EXIT_OUTPUT;
    }
    if (rc == EX_EXIT_OK && rename(part, a->output) != 0) {
        fprintf(stderr, "plantwatch-export: cannot rename %s to %s\n", part, a->output);
        rc = EX_EXIT_OUTPUT;
    }
    if (rc != EX_EXIT_OK) {
        remove(part);
    }
    free(part);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("plantwatch-export %s\n", PW_VERSION);
        return EX_EXIT_OK;
    }
    ex_args a;
    char err[256];
    int parsed = ex_args_parse(argc, argv, &a, err, sizeof(err));
    if (parsed == EX_PARSE_HELP) {
        ex_args_help(stdout);
        return EX_EXIT_OK;
    }
    if (parsed != EX_PARSE_OK) {
        fprintf(stderr, "plantwatch-export: %s (see plantwatch-export --help)\n", err);
        return EX_EXIT_USAGE;
    }
    char key[512];
    if (ex_key_load(key, sizeof(key)) < 0) {
        fprintf(stderr, "plantwatch-export: PW_READ_KEY_FILE / PW_READ_KEY holds no usable key\n");
        return EX_EXIT_USAGE;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "plantwatch-export: cannot start libcurl\n");
        return EX_EXIT_CUT;
    }
    char *url = ex_fetch_url(pw_env_str("PW_METRICS_URL", "http://127.0.0.1:8000"), &a);
    int rc = url ? ex_main_export(&a, url, key) : EX_EXIT_OUTPUT;
    free(url);
    curl_global_cleanup();
    return rc;
}
