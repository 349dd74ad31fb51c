/* mx_views: the five analytics views and their registry. Each view is ONE
 * function from validated parameters to a protobuf-c response, reading the
 * store; the gRPC service and the REST shim both call it, so their answers
 * are the same message. */
#ifndef MX_VIEWS_H
#define MX_VIEWS_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#include "mx_params.h"
#include "mx_store.h"

/* Returns 0 and a response in *out (free with protobuf_c_message_free_unpacked
 * (*out, NULL)), or -1 with a store error in err. */
typedef int (*mx_view_fn)(mx_store *store, const mx_params *p, ProtobufCMessage **out, char *err,
                          size_t errlen);

typedef struct {
    const char *name;     /* short name, used in logs and metric labels */
    const char *path;     /* REST path */
    const char *rpc_path; /* gRPC method path */
    const ProtobufCMessageDescriptor *request;
    const ProtobufCMessageDescriptor *response;
    const mx_param_spec *params;
    size_t nparams;
    mx_view_fn run;
} mx_view;

extern const mx_view mx_views[];
extern const size_t mx_view_count;

/* The view served at REST path, or NULL. */
const mx_view *mx_view_by_path(const char *path);

int mx_view_temperature(mx_store *store, const mx_params *p, ProtobufCMessage **out, char *err,
                        size_t errlen);
int mx_view_alerts(mx_store *store, const mx_params *p, ProtobufCMessage **out, char *err,
                   size_t errlen);
int mx_view_activity(mx_store *store, const mx_params *p, ProtobufCMessage **out, char *err,
                     size_t errlen);
int mx_view_firmware(mx_store *store, const mx_params *p, ProtobufCMessage **out, char *err,
                     size_t errlen);
int mx_view_health(mx_store *store, const mx_params *p, ProtobufCMessage **out, char *err,
                   size_t errlen);

#endif
