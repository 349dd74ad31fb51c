/* sim_table: aligned plain-text tables for the report. Owns column widths,
 * alignment and the copies of the cell strings. */
#ifndef PW_SIM_TABLE_H
#define PW_SIM_TABLE_H

#include <stddef.h>
#include <stdio.h>

#define PW_SIM_TABLE_MAX_COLS 8

typedef struct {
    size_t ncols;
    const char *headers[PW_SIM_TABLE_MAX_COLS];
    int right[PW_SIM_TABLE_MAX_COLS]; /* 1: right-aligned (numbers) */
    char **cells;                     /* nrows * ncols copies */
    size_t nrows;
    size_t cap;
} pw_sim_table;

/* headers: ncols names; a name starting with '>' is right-aligned (the '>' is not shown). */
void pw_sim_table_init(pw_sim_table *t, size_t ncols, const char *const *headers);
/* Appends a row of ncols cells (copied; NULL prints as empty). Returns 0 or -1. */
int pw_sim_table_add(pw_sim_table *t, const char *const *cells);
/* Header, a dashed rule, then the rows; every line starts with indent and has
 * no trailing spaces; columns are separated by two spaces. */
void pw_sim_table_print(const pw_sim_table *t, FILE *out, const char *indent);
void pw_sim_table_free(pw_sim_table *t);

#endif
