/* mx_json: the REST shim's JSON mapping of protobuf-c messages, driven by the
 * message descriptors so it is faithful by construction: every field under
 * its proto name, defaults included, 64-bit integers as JSON integers,
 * doubles as numbers, repeated fields as arrays. Each int64 field named
 * <x>_ms is accompanied by <x> with the same instant as an RFC 3339 string
 * (null when 0). */
#ifndef MX_JSON_H
#define MX_JSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

/* New JSON object for msg; NULL when out of memory. */
json_t *mx_json_from_message(const ProtobufCMessage *msg);

#endif
