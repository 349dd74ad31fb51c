/* Unit test for pw_http: the bounded request body, and the response helpers
 * and operational endpoints served by a real libmicrohttpd daemon on a
 * loopback port, read back with a plain socket client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pw_http.h"
#include "pw_validate.h"

#define BODY_LIMIT 64

/* ---- body accumulation --------------------------------------------------- */

static void test_body_limit(void **state)
{
    (void)state;
    pw_http_body b;
    pw_http_body_init(&b, 10);
    pw_http_body_append(&b, "hello", 5);
    pw_http_body_append(&b, "", 0);
    pw_http_body_append(&b, "world", 5); /* exactly the limit */
    assert_false(b.too_large);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "helloworld"); /* kept NUL-terminated */
    pw_http_body_append(&b, "!", 1);
    assert_true(b.too_large);
    assert_int_equal(b.len, 10); /* stops growing */
    pw_http_body_append(&b, "x", 1);
    assert_int_equal(b.len, 10);
    assert_true(b.too_large);
    pw_http_body_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_false(b.too_large);

    /* one oversized chunk */
    pw_http_body_init(&b, 4);
    pw_http_body_append(&b, "12345", 5);
    assert_true(b.too_large);
    assert_int_equal(b.len, 0);
    pw_http_body_free(&b);

    /* many small chunks grow the buffer */
    pw_http_body_init(&b, 100000);
    for (int i = 0; i < 10000; i++) {
        pw_http_body_append(&b, "0123456789", 10);
    }
    assert_false(b.too_large);
    assert_int_equal(b.len, 100000);
    assert_memory_equal(b.data + 99990, "0123456789", 10);
    pw_http_body_append(&b, "x", 1);
    assert_true(b.too_large);
    pw_http_body_free(&b);
}

/* ---- a daemon using the helpers ------------------------------------------ */

typedef struct {
    pw_prom *prom;
    int ready;
} app;

static int app_ready(void *ctx, char *why, size_t whylen)
{
    app *a = ctx;
    if (!a->ready) {
        snprintf(why, whylen, "kafka: no broker reachable");
    }
    return a->ready;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)version;
    app *a = cls;
    enum MHD_Result res;
    if (pw_http_serve_ops(c, url, method, a->prom, app_ready, a, &res)) {
        return res;
    }
    if (strcmp(url, "/json") == 0) {
        if (strcmp(method, "POST") != 0) {
            return pw_http_send_method_not_allowed(c, "POST");
        }
        pw_http_body *b = *con_cls;
        if (b == NULL) {
            b = malloc(sizeof *b);
            pw_http_body_init(b, BODY_LIMIT);
            *con_cls = b;
            return MHD_YES;
        }
        if (*upload_size > 0) {
            pw_http_body_append(b, upload, *upload_size);
            *upload_size = 0;
            return MHD_YES;
        }
        if (b->too_large) {
            res = pw_http_send_error(c, 413, "payload_too_large", "body exceeds 64 bytes", NULL);
        } else if (!pw_http_is_json(c)) {
            res = pw_http_send_error(c, 415, "unsupported_media_type", "expected JSON", NULL);
        } else {
            res = pw_http_send_json(c, 202, json_pack("{s:i}", "len", (int)b->len));
        }
        return res;
    }
    if (strcmp(url, "/invalid") == 0) {
        pw_errors e;
        pw_errors_init(&e);
        pw_errors_add(&e, 1, "value", "must be a finite number");
        res =
            pw_http_send_error(c, 400, "invalid_argument", "1 invalid item", pw_errors_to_json(&e));
        pw_errors_free(&e);
        return res;
    }
    if (strcmp(url, "/busy") == 0) {
        return pw_http_send_unavailable(c, 7, "kafka unavailable");
    }
    if (strcmp(url, "/text") == 0) {
        return pw_http_send_text(c, 200, "text/html", "<p>hi</p>", 9);
    }
    return pw_http_send_error(c, 404, "not_found", "no such route", NULL);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    pw_http_body *b = *con_cls;
    if (b != NULL) {
        pw_http_body_free(b);
        free(b);
        *con_cls = NULL;
    }
}

typedef struct {
    struct MHD_Daemon *d;
    app a;
    int port;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->a.prom = pw_prom_new();
    pw_prom_family *c = pw_prom_counter(f->a.prom, "pw_test_total", "Test counter.", "k");
    const char *lv[] = {"v"};
    pw_prom_add(c, lv, 3);
    f->a.ready = 1;
    f->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                            handle, &f->a, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                            MHD_OPTION_SOCK_ADDR, NULL, MHD_OPTION_END);
    assert_non_null(f->d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT);
    f->port = info->port;
    assert_true(f->port > 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    MHD_stop_daemon(f->d);
    pw_prom_free(f->a.prom);
    free(f);
    return 0;
}

typedef struct {
    int status;
    char headers[2048];
    char body[4096];
} response;

static void copy_bounded(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    assert_true(n < cap);
    memcpy(dst, src, n + 1);
}

/* One HTTP/1.1 request with Connection: close; the whole response is read. */
static void request(int port, const char *method, const char *path, const char *content_type,
                    const char *body, response *out)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                     "%s%s%sContent-Length: %zu\r\n\r\n%s",
                     method, path, content_type ? "Content-Type: " : "",
                     content_type ? content_type : "", content_type ? "\r\n" : "",
                     body ? strlen(body) : 0, body ? body : "");
    assert_int_equal(write(fd, req, (size_t)n), n);
    char buf[8192];
    size_t len = 0;
    ssize_t r;
    while ((r = read(fd, buf + len, sizeof buf - 1 - len)) > 0) {
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    assert_int_equal(sscanf(buf, "HTTP/1.1 %d", &out->status), 1);
    char *sep = strstr(buf, "\r\n\r\n");
    assert_non_null(sep);
    *sep = '\0';
    copy_bounded(out->headers, sizeof out->headers, buf);
    copy_bounded(out->body, sizeof out->body, sep + 4);
}

static int has_header(const response *r, const char *line)
{
    char want[256];
    snprintf(want, sizeof want, "\r\n%s\r\n", line);
    char hdrs[sizeof r->headers + 2];
    size_t n = strlen(r->headers);
    memcpy(hdrs, r->headers, n);
    memcpy(hdrs + n, "\r\n", 3);
    /* header names are case-insensitive; MHD keeps ours as written */
    return strcasestr(hdrs, want) != NULL;
}

static void test_ops_endpoints(void **state)
{
    fixture *f = *state;
    response r;
    request(f->port, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    assert_true(has_header(&r, "Content-Type: application/json"));

    request(f->port, "GET", "/readyz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ready\"}");
    f->a.ready = 0;
    request(f->port, "GET", "/readyz", NULL, NULL, &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body,
                        "{\"status\":\"not ready\",\"reason\":\"kafka: no broker reachable\"}");

    request(f->port, "GET", "/metrics", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Content-Type: text/plain; version=0.0.4"));
    assert_string_equal(r.body, "# HELP pw_test_total Test counter.\n"
                                "# TYPE pw_test_total counter\n"
                                "pw_test_total{k=\"v\"} 3\n");

    request(f->port, "POST", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 405);
    assert_true(has_header(&r, "Allow: GET, HEAD"));
}

static void test_error_format(void **state)
{
    fixture *f = *state;
    response r;
    request(f->port, "GET", "/nowhere", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(
        r.body,
        "{\"error\":{\"code\":\"not_found\",\"message\":\"no such route\",\"details\":[]}}");

    request(f->port, "GET", "/invalid", NULL, NULL, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "{\"error\":{\"code\":\"invalid_argument\",\"message\":\"1 invalid "
                                "item\",\"details\":[{\"index\":1,\"field\":\"value\",\"message\":"
                                "\"must be a finite number\"}]}}");

    request(f->port, "GET", "/busy", NULL, NULL, &r);
    assert_int_equal(r.status, 503);
    assert_true(has_header(&r, "Retry-After: 7"));
    assert_string_equal(r.body, "{\"error\":{\"code\":\"unavailable\",\"message\":\"kafka "
                                "unavailable\",\"details\":[]}}");

    request(f->port, "GET", "/json", NULL, NULL, &r);
    assert_int_equal(r.status, 405);
    assert_true(has_header(&r, "Allow: POST"));
    assert_string_equal(r.body, "{\"error\":{\"code\":\"method_not_allowed\",\"message\":\"method "
                                "not allowed\",\"details\":[]}}");

    request(f->port, "GET", "/text", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Content-Type: text/html"));
    assert_string_equal(r.body, "<p>hi</p>");
}

static void test_body_limit_over_http(void **state)
{
    fixture *f = *state;
    response r;
    char body[BODY_LIMIT + 2];
    memset(body, ' ', sizeof body - 1);
    body[0] = '[';
    body[BODY_LIMIT - 1] = ']';
    body[BODY_LIMIT] = '\0';
    request(f->port, "POST", "/json", "application/json", body, &r);
    assert_int_equal(r.status, 202);
    assert_string_equal(r.body, "{\"len\":64}");
    body[BODY_LIMIT] = ' ';
    body[BODY_LIMIT + 1] = '\0';
    request(f->port, "POST", "/json", "application/json", body, &r);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body, "\"code\":\"payload_too_large\""));
}

static void test_content_type(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *ct;
        int status;
    } cases[] = {
        {"application/json", 202},
        {"application/json; charset=utf-8", 202},
        {"Application/JSON;charset=UTF-8", 202},
        {"application/json ; charset=utf-8", 202},
        {"application/merge-patch+json", 202},
        {"application/vnd.plantwatch.v1+json; charset=utf-8", 202},
        {"text/plain", 415},
        {"application/jsonx", 415},
        {"application/x-www-form-urlencoded", 415},
        {"text/json", 415},
        {"application/+json", 415},
        {"json", 415},
        {NULL, 415},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        response r;
        request(f->port, "POST", "/json", cases[i].ct, "{}", &r);
        if (r.status != cases[i].status) {
            fail_msg("Content-Type %s: %d, want %d", cases[i].ct ? cases[i].ct : "(none)", r.status,
                     cases[i].status);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test_setup_teardown(test_ops_endpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_limit_over_http, setup, teardown),
        cmocka_unit_test_setup_teardown(test_content_type, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
