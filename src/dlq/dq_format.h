/* dq_format: how a dead letter is shown. Owns the text line of `list`, the
 * NDJSON object of `list --json` and the escaping of arbitrary bytes (keys,
 * header values) for both. Pure: writes to the FILE it is given. */
#ifndef DQ_FORMAT_H
#define DQ_FORMAT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "dq_letter.h"

/* Writes data as a double-quoted string: printable ASCII as is, \" \\ \n \r
 * \t, every other byte as \xNN. */
void dq_format_quoted(FILE *out, const void *data, size_t len);

/* One line: "<p>:<offset> <time> <reason> <detail> <origin> key=<key>\n";
 * missing parts show as "-", the detail and the key quoted. */
void dq_format_text(FILE *out, const dq_letter *l);

/* A new JSON object (caller owns it): dlq_partition, dlq_offset, time, time_ms,
 * reason, detail, origin, source_topic, source_partition, source_offset, key
 * (null without a key; key_hex instead when it is not UTF-8), value_bytes, and
 * replayed_from when present. Missing headers are null. NULL when out of memory. */
json_t *dq_format_json(const dq_letter *l);

/* The object as one compact line. 0, or -1 on a write error. */
int dq_format_json_line(FILE *out, const dq_letter *l);

#endif
