/* sim_table: aligned text tables (see sim_table.h). */
#include "sim_table.h"

#include <stdlib.h>
#include <string.h>

void pw_sim_table_init(pw_sim_table *t, size_t ncols, const char *const *headers)
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols > PW_SIM_TABLE_MAX_COLS ? PW_SIM_TABLE_MAX_COLS : ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        t->right[i] = headers[i][0] == '>';
        t->headers[i] = headers[i] + (t->right[i] ? 1 : 0);
    }
}

int pw_sim_table_add(pw_sim_table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        char **nc = realloc(t->cells, cap * t->ncols * sizeof *nc);
        if (!nc) {
            return -1;
        }
        t->cells = nc;
        t->cap = cap;
    }
    char **row = t->cells + t->nrows * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        row[i] = strdup(cells[i] ? cells[i] : "");
        if (!row[i]) {
            for (size_t j = 0; j < i; j++) {
                free(row[j]);
            }
            return -1;
        }
    }
    t->nrows++;
    return 0;
}

static void pw_sim_table_line(const pw_sim_table *t, FILE *out, const char *indent,
                              const size_t *width, const char *const *cells)
{
    char line[1024];
    size_t len = (size_t)snprintf(line, sizeof line, "%s", indent);
    for (size_t i = 0; i < t->ncols && len < sizeof line; i++) {
        const char *sep = i + 1 < t->ncols ? "  " : "";
        len += (size_t)snprintf(line + len, sizeof line - len, t->right[i] ? "%*s%s" : "%-*s%s",
                                (int)width[i], cells[i], sep);
    }
    if (len >= sizeof line) {
        len = sizeof line - 1;
    }
    while (len > 0 && line[len - 1] == ' ') {
        len--;
    }
    fprintf(out, "%.*s\n", (int)len, line);
}

void pw_sim_table_print(const pw_sim_table *t, FILE *out, const char *indent)
{
    size_t width[PW_SIM_TABLE_MAX_COLS];
    char rules[PW_SIM_TABLE_MAX_COLS][64];
    const char *rule_cells[PW_SIM_TABLE_MAX_COLS];
    for (size_t i = 0; i < t->ncols; i++) {
        width[i] = strlen(t->headers[i]);
        for (size_t r = 0; r < t->nrows; r++) {
            size_t len = strlen(t->cells[r * t->ncols + i]);
            if (len > width[i]) {
                width[i] = len;
            }
        }
        size_t n = width[i] < sizeof rules[i] - 1 ? width[i] : sizeof rules[i] - 1;
        memset(rules[i], '-', n);
        rules[i][n] = '\0';
        rule_cells[i] = rules[i];
    }
    pw_sim_table_line(t, out, indent, width, t->headers);
    pw_sim_table_line(t, out, indent, width, rule_cells);
    for (size_t r = 0; r < t->nrows; r++) {
        pw_sim_table_line(t, out, indent, width, (const char *const *)(t->cells + r * t->ncols));
    }
}

void pw_sim_table_free(pw_sim_table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++) {
        free(t->cells[i]);
    }
    free(t->cells);
    t->cells = NULL;
    t->nrows = t->cap = 0;
}
