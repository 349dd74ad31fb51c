/* sim_report: `plantwatch-sim report`. Owns fetching the five analytics views
 * from the metrics REST shim and rendering each as a text table. Reading is
 * defensive: 64-bit counts may arrive as numbers or strings, fields equal to
 * their zero value may be absent (proto3 JSON), names may be snake_case or
 * lowerCamelCase; a view that cannot be fetched or read is printed as
 * "unavailable: <reason>" and the other views are still shown. */
#ifndef PW_SIM_REPORT_H
#define PW_SIM_REPORT_H

#include <jansson.h>
#include <stdio.h>

#include "sim_options.h"

typedef struct {
    const char *title;
    const char *path; /* below the metrics base URL */
    /* Prints the view's tables from its JSON document; 0, or -1 with why set. */
    int (*render)(const json_t *doc, FILE *out, char *why, size_t whylen);
} pw_sim_view;

#define PW_SIM_VIEW_COUNT 5
#define PW_SIM_VIEW_TEMPERATURE 0 /* index of temperature by zone */
extern const pw_sim_view pw_sim_views[PW_SIM_VIEW_COUNT];

/* Renders one fetched view: status is the HTTP status (0 when the fetch
 * itself failed, fetch_err says why), body the response. Prints the title
 * and either the tables or "  unavailable: …". Returns the number of rows
 * shown (>= 0) or -1 when unavailable. */
int pw_sim_report_render(const pw_sim_view *v, long status, const char *body, const char *fetch_err,
                         FILE *out);

/* Fetches and prints every view; returns the process exit status: 0 when
 * temperature by zone was shown (and, with require_data, had a zone), else 1. */
int pw_sim_report(const pw_sim_report_opts *o, FILE *out);

#endif
