/* dq_kafka: quiet, error-capturing librdkafka configuration for
 * plantwatch-dlq (see dq_kafka.h). */
#include "dq_kafka.h"

#include <stdio.h>
#include <string.h>

static void dq_kafka_quiet(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    (void)level;
    (void)fac;
    (void)buf;
}

static void dq_kafka_error(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
    (void)rk;
    dq_kafka_errors *errors = opaque;
    snprintf(errors->last, sizeof errors->last, "%s", reason);
    if (code == RD_KAFKA_RESP_ERR__AUTHENTICATION) {
        errors->auth_failed = 1;
    }
    if (code == RD_KAFKA_RESP_ERR__FATAL) {
        errors->fatal = 1;
    }
}

rd_kafka_conf_t *dq_kafka_conf_new(const pw_kafka_settings *s, int verbose, dq_kafka_errors *errors,
                                   char *err, size_t errlen)
{
    memset(errors, 0, sizeof *errors);
    snprintf(errors->username, sizeof errors->username, "%s", s->username ? s->username : "");
    rd_kafka_conf_t *conf = pw_kafka_conf_new(s, err, errlen);
    if (conf == NULL) {
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, errors);
    rd_kafka_conf_set_error_cb(conf, dq_kafka_error);
    if (!verbose) {
        rd_kafka_conf_set_log_cb(conf, dq_kafka_quiet);
    }
    return conf;
}

int dq_kafka_broken(const dq_kafka_errors *errors)
{
    return errors->auth_failed || errors->fatal;
}

void dq_kafka_explain(const dq_kafka_errors *errors, const char *what, rd_kafka_resp_err_t e,
                      char *err, size_t errlen)
{
    if (errors->auth_failed) {
        snprintf(err, errlen, "%s: Kafka refused the credentials of user \"%s\" (%s)", what,
                 errors->username, errors->last);
    } else if (errors->last[0] != '\0') {
        snprintf(err, errlen, "%s: %s (last client error: %s)", what, rd_kafka_err2str(e),
                 errors->last);
    } else {
        snprintf(err, errlen, "%s: %s", what, rd_kafka_err2str(e));
    }
}
