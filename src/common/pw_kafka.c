/* pw_kafka: owns how every service connects to the cluster — settings read
 * from the environment (bootstrap, SCRAM credentials, CA, protocol, client id)
 * and the librdkafka configuration built from them. */
#include "pw_kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_env.h"

static char *pw_kafka_dup_env(const char *name, const char *def)
{
    const char *v = pw_env_str(name, def);
    return v ? strdup(v) : NULL;
}

int pw_kafka_settings_from_env(pw_kafka_settings *s, const char *default_user, char *err,
                               size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->bootstrap = pw_kafka_dup_env("PW_KAFKA_BOOTSTRAP", "127.0.0.1:9093");
    s->username = pw_kafka_dup_env("PW_KAFKA_USERNAME", default_user);
    s->password = pw_env_secret("PW_KAFKA_PASSWORD");
    s->ca_file = pw_kafka_dup_env("PW_KAFKA_CA_FILE", NULL);
    s->protocol = pw_kafka_dup_env("PW_KAFKA_SECURITY_PROTOCOL", "SASL_SSL");
    s->client_id = pw_kafka_dup_env("PW_INSTANCE", "plantwatch");

    int sasl = s->protocol != NULL && strncasecmp(s->protocol, "SASL_", 5) == 0;
    const char *missing = NULL;
    if (s->bootstrap == NULL) {
        missing = "PW_KAFKA_BOOTSTRAP";
    } else if (sasl && s->username == NULL) {
        missing = "PW_KAFKA_USERNAME";
    } else if (sasl && s->password == NULL) {
        missing = "PW_KAFKA_PASSWORD_FILE or PW_KAFKA_PASSWORD";
    }
    if (missing != NULL) {
        const char *file = getenv("PW_KAFKA_PASSWORD_FILE");
        if (s->password == NULL && file != NULL && file[0] != '\0') {
            snprintf(err, errlen, "PW_KAFKA_PASSWORD_FILE: cannot read \"%s\"", file);
        } else {
            snprintf(err, errlen, "%s is not set", missing);
        }
        pw_kafka_settings_free(s);
        return -1;
    }
    return 0;
}

void pw_kafka_settings_free(pw_kafka_settings *s)
{
    free(s->bootstrap);
    free(s->username);
    if (s->password != NULL) {
        /* do not leave the secret in freed heap memory */
        volatile char *p = s->password;
        while (*p) {
            *p++ = '\0';
        }
    }
    free(s->password);
    free(s->ca_file);
    free(s->protocol);
    free(s->client_id);
    memset(s, 0, sizeof *s);
}

int pw_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err,
                      size_t errlen)
{
    char rderr[512];
    if (rd_kafka_conf_set(conf, name, value, rderr, sizeof rderr) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "%s: %s", name, rderr);
        return -1;
    }
    return 0;
}

rd_kafka_conf_t *pw_kafka_conf_new(const pw_kafka_settings *s, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf == NULL) {
        snprintf(err, errlen, "rd_kafka_conf_new failed");
        return NULL;
    }
    const char *protocol = s->protocol ? s->protocol : "SASL_SSL";
    int sasl = strncasecmp(protocol, "SASL_", 5) == 0;
    int ssl = strcasecmp(protocol, "SSL") == 0 || strcasecmp(protocol, "SASL_SSL") == 0;
    int rc = 0;
    rc |= pw_kafka_conf_set(conf, "bootstrap.servers", s->bootstrap, err, errlen);
    if (rc == 0) {
        rc |= pw_kafka_conf_set(conf, "security.protocol", protocol, err, errlen);
    }
    if (rc == 0 && s->client_id) {
        rc |= pw_kafka_conf_set(conf, "client.id", s->client_id, err, errlen);
    }
    if (rc == 0 && sasl) {
        rc |= pw_kafka_conf_set(conf, "sasl.mechanisms", "SCRAM-SHA-512", err, errlen);
        if (rc == 0) {
            rc |= pw_kafka_conf_set(conf, "sasl.username", s->username ? s->username : "", err,
                                    errlen);
        }
        if (rc == 0) {
            rc |= pw_kafka_conf_set(conf, "sasl.password", s->password ? s->password : "", err,
                                    errlen);
        }
    }
    if (rc == 0 && ssl) {
        /* brokers' certificates carry IP SANs, so hostname checks pass on IPs */
        rc |=
            pw_kafka_conf_set(conf, "ssl.endpoint.identification.algorithm", "https", err, errlen);
        if (rc == 0 && s->ca_file) {
            rc |= pw_kafka_conf_set(conf, "ssl.ca.location", s->ca_file, err, errlen);
        }
    }
    if (rc != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}
