/* pw_grpc_reflection: server reflection (grpc.reflection.v1 and v1alpha,
 * whose messages are the same on the wire, so the v1 codec serves both) for
 * every pw_grpc server. It answers from the FileDescriptorSet of proto/ that
 * scripts/gen-proto.sh embeds (gen/pw_descriptors.c): list_services names the
 * services registered on this server, file_by_filename and
 * file_containing_symbol return the file with every file it imports, so
 * grpcurl needs no local .proto files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "pw_grpc_internal.h"

extern const unsigned char pw_descriptor_set[];
extern const size_t pw_descriptor_set_len;

typedef Google__Protobuf__FileDescriptorProto pw_grpc_file;
typedef Google__Protobuf__DescriptorProto pw_grpc_msg;
typedef Grpc__Reflection__V1__ServerReflectionRequest pw_grpc_refl_req;
typedef Grpc__Reflection__V1__ServerReflectionResponse pw_grpc_refl_resp;

#define PW_GRPC_NOT_FOUND 5

struct pw_grpc_refl {
    Google__Protobuf__FileDescriptorSet *set; /* owned */
    ProtobufCBinaryData *raw;                 /* each file's bytes, in pw_descriptor_set */
};

/* Splits the set's wire bytes into its files (field 1, length-delimited). */
static int pw_grpc_refl_split(pw_grpc_refl *r)
{
    const uint8_t *p = pw_descriptor_set, *end = pw_descriptor_set + pw_descriptor_set_len;
    for (size_t i = 0; i < r->set->n_file; i++) {
        if (p >= end || *p++ != 0x0a) {
            return -1;
        }
        uint64_t len = 0;
        for (int shift = 0; p < end && shift < 64; shift += 7) {
            uint8_t b = *p++;
            len |= (uint64_t)(b & 0x7f) << shift;
            if (!(b & 0x80)) {
                break;
            }
        }
        if (len > (uint64_t)(end - p)) {
            return -1;
        }
        r->raw[i].data = (uint8_t *)p;
        r->raw[i].len = (size_t)len;
        p += len;
    }
    return p == end ? 0 : -1;
}

pw_grpc_refl *pw_grpc_refl_new(void)
{
    pw_grpc_refl *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return NULL;
    }
    r->set = google__protobuf__file_descriptor_set__unpack(NULL, pw_descriptor_set_len,
                                                           pw_descriptor_set);
    if (r->set != NULL) {
        r->raw = calloc(r->set->n_file + 1, sizeof *r->raw);
    }
    if (r->set == NULL || r->raw == NULL || pw_grpc_refl_split(r) != 0) {
        pw_grpc_refl_free(r);
        return NULL;
    }
    return r;
}

void pw_grpc_refl_free(pw_grpc_refl *r)
{
    if (r == NULL) {
        return;
    }
    if (r->set != NULL) {
        google__protobuf__file_descriptor_set__free_unpacked(r->set, NULL);
    }
    free(r->raw);
    free(r);
}

/* ---- symbol look-up ------------------------------------------------------ */

/* Does sym equal prefix + "." + name (or name when prefix is empty)? Sets
 * *rest to what follows a longer match ending in ".", else NULL. */
static int pw_grpc_refl_name_is(const char *sym, const char *prefix, const char *name,
                                const char **rest)
{
    size_t pl = strlen(prefix), nl = strlen(name);
    *rest = NULL;
    if (pl > 0) {
        if (strncmp(sym, prefix, pl) != 0 || sym[pl] != '.') {
            return 0;
        }
        sym += pl + 1;
    }
    if (strncmp(sym, name, nl) != 0) {
        return 0;
    }
    if (sym[nl] == '.') {
        *rest = sym + nl + 1;
    }
    return sym[nl] == '\0';
}

static int pw_grpc_refl_in_enums(Google__Protobuf__EnumDescriptorProto *const *e, size_t n,
                                 const char *sym, const char *prefix)
{
    const char *rest;
    for (size_t i = 0; i < n; i++) {
        if (pw_grpc_refl_name_is(sym, prefix, e[i]->name, &rest)) {
            return 1;
        }
    }
    return 0;
}

/* sym is relative to the enclosing scope (already stripped of its prefix). */
static int pw_grpc_refl_in_msgs(pw_grpc_msg *const *m, size_t n, const char *sym)
{
    const char *rest;
    for (size_t i = 0; i < n; i++) {
        if (pw_grpc_refl_name_is(sym, "", m[i]->name, &rest)) {
            return 1;
        }
        if (rest != NULL && (pw_grpc_refl_in_msgs(m[i]->nested_type, m[i]->n_nested_type, rest) ||
                             pw_grpc_refl_in_enums(m[i]->enum_type, m[i]->n_enum_type, rest, ""))) {
            return 1;
        }
    }
    return 0;
}

static int pw_grpc_refl_in_services(const pw_grpc_file *f, const char *sym)
{
    const char *rest;
    for (size_t i = 0; i < f->n_service; i++) {
        Google__Protobuf__ServiceDescriptorProto *sv = f->service[i];
        if (pw_grpc_refl_name_is(sym, "", sv->name, &rest)) {
            return 1;
        }
        for (size_t k = 0; rest != NULL && k < sv->n_method; k++) {
            if (strcmp(rest, sv->method[k]->name) == 0) {
                return 1;
            }
        }
    }
    return 0;
}

static int pw_grpc_refl_defines(const pw_grpc_file *f, const char *sym)
{
    const char *pkg = f->package ? f->package : "";
    size_t pl = strlen(pkg);
    if (pl > 0) {
        if (strncmp(sym, pkg, pl) != 0 || sym[pl] != '.') {
            return 0;
        }
        sym += pl + 1;
    }
    return pw_grpc_refl_in_msgs(f->message_type, f->n_message_type, sym) ||
           pw_grpc_refl_in_enums(f->enum_type, f->n_enum_type, sym, "") ||
           pw_grpc_refl_in_services(f, sym);
}

static long pw_grpc_refl_by_symbol(const pw_grpc_refl *r, const char *sym)
{
    for (size_t i = 0; sym != NULL && i < r->set->n_file; i++) {
        if (pw_grpc_refl_defines(r->set->file[i], sym)) {
            return (long)i;
        }
    }
    return -1;
}

static long pw_grpc_refl_by_name(const pw_grpc_refl *r, const char *name)
{
    for (size_t i = 0; name != NULL && i < r->set->n_file; i++) {
        if (r->set->file[i]->name != NULL && strcmp(r->set->file[i]->name, name) == 0) {
            return (long)i;
        }
    }
    return -1;
}

/* Appends file i and, before it, what it imports (each once) to out. */
static void pw_grpc_refl_collect(const pw_grpc_refl *r, long i, char *seen,
                                 ProtobufCBinaryData *out, size_t *n)
{
    if (i < 0 || seen[i]) {
        return;
    }
    seen[i] = 1;
    out[(*n)++] = r->raw[i];
    const pw_grpc_file *f = r->set->file[i];
    for (size_t d = 0; d < f->n_dependency; d++) {
        pw_grpc_refl_collect(r, pw_grpc_refl_by_name(r, f->dependency[d]), seen, out, n);
    }
}

/* ---- the stream ---------------------------------------------------------- */

typedef struct {
    Grpc__Reflection__V1__FileDescriptorResponse files;
    Grpc__Reflection__V1__ListServiceResponse list;
    Grpc__Reflection__V1__ServiceResponse svc[PW_GRPC_MAX_METHODS];
    Grpc__Reflection__V1__ServiceResponse *svcp[PW_GRPC_MAX_METHODS];
    Grpc__Reflection__V1__ExtensionNumberResponse ext;
    Grpc__Reflection__V1__ErrorResponse error;
    char message[300];
    char *seen;
    ProtobufCBinaryData *blobs;
} pw_grpc_refl_parts;

static void pw_grpc_refl_error(pw_grpc_refl_resp *resp, pw_grpc_refl_parts *p, const char *what,
                               const char *name)
{
    grpc__reflection__v1__error_response__init(&p->error);
    snprintf(p->message, sizeof p->message, "%s not found: %.200s", what, name ? name : "");
    p->error.error_code = PW_GRPC_NOT_FOUND;
    p->error.error_message = p->message;
    resp->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    resp->error_response = &p->error;
}

static void pw_grpc_refl_files(const pw_grpc_refl *r, long i, pw_grpc_refl_resp *resp,
                               pw_grpc_refl_parts *p)
{
    size_t n = 0;
    memset(p->seen, 0, r->set->n_file);
    pw_grpc_refl_collect(r, i, p->seen, p->blobs, &n);
    grpc__reflection__v1__file_descriptor_response__init(&p->files);
    p->files.n_file_descriptor_proto = n;
    p->files.file_descriptor_proto = p->blobs;
    resp->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    resp->file_descriptor_response = &p->files;
}

static void pw_grpc_refl_list(char *const *services, size_t nservices, pw_grpc_refl_resp *resp,
                              pw_grpc_refl_parts *p)
{
    grpc__reflection__v1__list_service_response__init(&p->list);
    if (nservices > PW_GRPC_MAX_METHODS) {
        nservices = PW_GRPC_MAX_METHODS;
    }
    for (size_t i = 0; i < nservices; i++) {
        grpc__reflection__v1__service_response__init(&p->svc[i]);
        p->svc[i].name = services[i];
        p->svcp[i] = &p->svc[i];
    }
    p->list.n_service = nservices;
    p->list.service = p->svcp;
    resp->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
    resp->list_services_response = &p->list;
}

static void pw_grpc_refl_answer(const pw_grpc_refl *r, char *const *services, size_t nservices,
                                pw_grpc_refl_req *req, pw_grpc_refl_resp *resp,
                                pw_grpc_refl_parts *p)
{
    long i;
    resp->valid_host = req->host;
    resp->original_request = req;
    switch (req->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        pw_grpc_refl_list(services, nservices, resp, p);
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        i = pw_grpc_refl_by_name(r, req->file_by_filename);
        if (i < 0) {
            pw_grpc_refl_error(resp, p, "file", req->file_by_filename);
        } else {
            pw_grpc_refl_files(r, i, resp, p);
        }
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        i = pw_grpc_refl_by_symbol(r, req->file_containing_symbol);
        if (i < 0) {
            pw_grpc_refl_error(resp, p, "symbol", req->file_containing_symbol);
        } else {
            pw_grpc_refl_files(r, i, resp, p);
        }
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
        if (pw_grpc_refl_by_symbol(r, req->all_extension_numbers_of_type) < 0) {
            pw_grpc_refl_error(resp, p, "type", req->all_extension_numbers_of_type);
            break;
        }
        grpc__reflection__v1__extension_number_response__init(&p->ext);
        p->ext.base_type_name = req->all_extension_numbers_of_type;
        resp->message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
        resp->all_extension_numbers_response = &p->ext;
        break;
    default: /* no extensions are defined in proto/ */
        pw_grpc_refl_error(resp, p, "extension", "");
        break;
    }
}

int pw_grpc_refl_respond(const pw_grpc_refl *r, char *const *services, size_t nservices,
                         const uint8_t *req_buf, size_t req_len, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    pw_grpc_refl_req *req =
        grpc__reflection__v1__server_reflection_request__unpack(NULL, req_len, req_buf);
    if (req == NULL) {
        return -1;
    }
    pw_grpc_refl_parts p;
    p.seen = calloc(r->set->n_file + 1, 1);
    p.blobs = calloc(r->set->n_file + 1, sizeof *p.blobs);
    int rc = -2;
    if (p.seen != NULL && p.blobs != NULL) {
        pw_grpc_refl_resp resp = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
        pw_grpc_refl_answer(r, services, nservices, req, &resp, &p);
        size_t n = grpc__reflection__v1__server_reflection_response__get_packed_size(&resp);
        *out = malloc(n ? n : 1);
        if (*out != NULL) {
            *out_len = grpc__reflection__v1__server_reflection_response__pack(&resp, *out);
            rc = 0;
        }
    }
    free(p.seen);
    free(p.blobs);
    grpc__reflection__v1__server_reflection_request__free_unpacked(req, NULL);
    return rc;
}

/* Answers one request message; 0, or -1 with the call finished. */
static int pw_grpc_refl_one(pw_grpc_call *call, const pw_grpc_server *s, const uint8_t *buf,
                            size_t len)
{
    uint8_t *out;
    size_t n;
    int rc = pw_grpc_refl_respond(s->refl, s->services, s->nservices, buf, len, &out, &n);
    if (rc == -1) {
        pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_INVALID_ARGUMENT,
                            "ServerReflectionRequest does not decode");
        return -1;
    }
    if (rc != 0) {
        pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return -1;
    }
    rc = pw_grpc_call_send(call, out, n);
    free(out);
    if (rc != 0) {
        pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_CANCELLED, "stream failed");
    }
    return rc;
}

void pw_grpc_reflection_info(pw_grpc_call *call, void *ctx)
{
    const pw_grpc_server *s = ctx;
    uint8_t *buf;
    size_t len;
    int rc;
    while ((rc = pw_grpc_call_recv(call, &buf, &len)) == 1) {
        int one = pw_grpc_refl_one(call, s, buf, len);
        free(buf);
        if (one != 0) {
            return;
        }
    }
    if (rc == 0) {
        pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_OK, NULL);
    } else {
        pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_CANCELLED, "stream failed");
    }
}
