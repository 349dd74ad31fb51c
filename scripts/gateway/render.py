#!/usr/bin/env python3
"""Render the local nginx gateway from kong/kong.yaml and the local API keys.

This tool owns the translation of the Kong policy into an nginx configuration
(with the Lua module scripts/gateway/lua/pw_gateway.lua doing key-auth and
rate-limiting). The output depends only on its inputs: rendering twice gives
identical bytes, so a changed file always means a changed policy or key set.

    render.py [--kong kong/kong.yaml] [--keys FILE] [--state DIR] [--out FILE|-]
    render.py --kong-out FILE   # kong.yaml with the keys filled in, for `kong start`

Keys file: one consumer a line, `<consumer-name> <api-key>`; `#` starts a comment.
"""

import argparse
import os
import re
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kongconf  # noqa: E402

LUA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lua")
NGINX_MODULES = "/usr/lib/nginx/modules"
REST_LISTEN = "127.0.0.1:8000"
GRPC_LISTEN = "127.0.0.1:9080"
PERIOD_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
CONSUMER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
API_KEY_RE = re.compile(r"^[A-Za-z0-9._~+/=-]{8,256}$")


class RenderError(Exception):
    pass


def read_keys(path):
    """Parse the keys file into a list of (username, key), sorted by username."""
    entries, names, keys = [], set(), set()
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise RenderError("%s:%d: expected '<consumer-name> <api-key>'" % (path, lineno))
            name, key = parts
            if not CONSUMER_NAME_RE.match(name):
                raise RenderError("%s:%d: invalid consumer name '%s'" % (path, lineno, name))
            if not API_KEY_RE.match(key):
                raise RenderError("%s:%d: invalid key for '%s' (8-256 of A-Z a-z 0-9 . _ ~ + / = -)" % (path, lineno, name))
            if name in names:
                raise RenderError("%s:%d: consumer '%s' listed twice" % (path, lineno, name))
            if key in keys:
                raise RenderError("%s:%d: key of '%s' is already used by another consumer" % (path, lineno, name))
            names.add(name)
            keys.add(key)
            entries.append((name, key))
    return sorted(entries)


def lua_str(s):
    """A Lua string literal; only characters allowed in names and keys reach here."""
    return '"' + "".join(c if c.isalnum() or c in "._~+/=-|: " else "\\%d" % ord(c) for c in s) + '"'


def nginx_time(ms):
    return "%dms" % ms


def check_supported(pol):
    kinds = [svc.kind for svc in pol.services]
    for kind in ("rest", "grpc"):
        if kinds.count(kind) != 1:
            raise RenderError("kong.yaml needs exactly one %s service, has %d" % (kind, kinds.count(kind)))
    for svc in pol.services:
        if svc.algorithm != "round-robin":
            raise RenderError("service %s: upstream algorithm '%s' is not supported locally" % (svc.name, svc.algorithm))
        if not svc.targets:
            raise RenderError("service %s: upstream has no target" % svc.name)
        for route in svc.routes:
            for path in route.paths:
                if path.startswith("~"):
                    raise RenderError("route %s: regex paths are not supported locally" % route.name)
        rl = svc.plugins.get("rate-limiting")
        if rl is None:
            continue
        if rl.get("policy", "local") != "local":
            raise RenderError("service %s: rate-limiting policy '%s' is not supported locally" % (svc.name, rl["policy"]))
        if rl.get("limit_by", "consumer") not in ("consumer", "credential", "ip"):
            raise RenderError("service %s: rate-limiting limit_by '%s' is not supported locally" % (svc.name, rl["limit_by"]))
        for period in kongconf.RATE_PERIODS:
            if period in rl and period not in PERIOD_SECONDS:
                raise RenderError("service %s: rate-limiting period '%s' is not supported locally" % (svc.name, period))


def _lua_bool(v):
    return "true" if v else "false"


def _num(v):
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def render_lua_service(svc):
    """The Lua table of one service's key-auth and rate-limiting settings."""
    lines = ["        %s = {" % svc.kind, "            name = %s," % lua_str(svc.name)]
    ka = svc.plugins.get("key-auth")
    if ka is not None:
        lines += [
            "            key_auth = {",
            "                key_names = {%s}," % ", ".join(lua_str(n) for n in ka.get("key_names", ["apikey"])),
            "                key_in_header = %s," % _lua_bool(ka.get("key_in_header", True)),
            "                key_in_query = %s," % _lua_bool(ka.get("key_in_query", True)),
            "                hide_credentials = %s," % _lua_bool(ka.get("hide_credentials", False)),
            "            },",
        ]
    rl = svc.plugins.get("rate-limiting")
    if rl is not None:
        lines += [
            "            rate_limiting = {",
            # Kong keys a service-scoped plugin's counters by service; a global one shares them.
            "                scope = %s," % lua_str(svc.name if svc.plugin_scope == "service" else "global"),
            "                limit_by = %s," % lua_str(rl.get("limit_by", "consumer")),
            "                fault_tolerant = %s," % _lua_bool(rl.get("fault_tolerant", True)),
            "                hide_client_headers = %s," % _lua_bool(rl.get("hide_client_headers", False)),
            "                error_code = %d," % rl.get("error_code", 429),
            "                error_message = %s," % lua_str(rl.get("error_message", "API rate limit exceeded")),
            "                limits = {",
        ]
        for period in sorted((p for p in rl if p in PERIOD_SECONDS), key=PERIOD_SECONDS.get):
            lines.append("                    {%s, %s, %d}," % (lua_str(period), _num(rl[period]), PERIOD_SECONDS[period]))
        lines += ["                },", "            },"]
    lines.append("        },")
    return lines


def render_lua_init(pol, keys):
    lines = [
        "    init_by_lua_block {",
        '        require("pw_gateway").init({',
        '        dict = "pw_ratelimit",',
        "        consumers = {",
    ]
    for name, key in keys:
        lines.append("            [%s] = %s," % (lua_str(key), lua_str(name)))
    lines += ["        },", "        services = {"]
    for svc in pol.services:
        lines += ["    " + line for line in render_lua_service(svc)]
    lines += ["        },", "        })", "    }"]
    return lines


def render_upstream(name, targets):
    lines = ["    upstream %s {" % name]
    for t in targets:
        lines.append("        server %s max_fails=0;" % t)
    lines += ["        keepalive 32;", "    }"]
    return lines


def render_locations(svc, upstream):
    t = svc.timeouts
    out = []
    for route in svc.routes:
        for path in route.paths:
            out.append("        # route %s (service %s)" % (route.name, svc.name))
            out.append("        location %s {" % path)
            out.append('            access_by_lua_block { require("pw_gateway").access("%s") }' % svc.kind)
            out.append('            header_filter_by_lua_block { require("pw_gateway").header_filter() }')
            if svc.kind == "rest":
                out += [
                    "            proxy_pass http://%s;" % upstream,
                    "            proxy_http_version 1.1;",
                    '            proxy_set_header Connection "";',
                    "            proxy_set_header X-Real-IP $remote_addr;",
                    "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                    "            proxy_set_header X-Forwarded-Proto $scheme;",
                    "            proxy_connect_timeout %s;" % nginx_time(t["connect"]),
                    "            proxy_read_timeout %s;" % nginx_time(t["read"]),
                    "            proxy_send_timeout %s;" % nginx_time(t["write"]),
                    "            proxy_next_upstream error timeout;",
                    "            proxy_next_upstream_tries %d;" % (t["retries"] + 1),
                ]
            else:
                out += [
                    "            grpc_pass grpc://%s;" % upstream,
                    "            grpc_set_header X-Real-IP $remote_addr;",
                    "            grpc_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                    "            grpc_connect_timeout %s;" % nginx_time(t["connect"]),
                    "            grpc_read_timeout %s;" % nginx_time(t["read"]),
                    "            grpc_send_timeout %s;" % nginx_time(t["write"]),
                    "            grpc_next_upstream error timeout;",
                    "            grpc_next_upstream_tries %d;" % (t["retries"] + 1),
                ]
            out.append("        }")
    return out


def render_server(svc, listen, upstream, comment):
    lines = [
        "    # %s" % comment,
        "    server {",
        "        listen %s;" % listen,
        '        set $pw_consumer "";',
        '        set $pw_grpc_status "";',
    ]
    lines += render_locations(svc, upstream)
    lines += [
        "        # Kong answers a path no route matches with 404",
        "        location / {",
        '            content_by_lua_block { require("pw_gateway").no_route("%s") }' % svc.kind,
        "        }",
        "    }",
    ]
    return lines


LOG_FORMAT = (
    "    log_format pw_json escape=json '{\"time\":\"$time_iso8601\",\"remote\":\"$remote_addr\","
    "\"protocol\":\"$server_protocol\",\"method\":\"$request_method\",\"path\":\"$uri\","
    "\"status\":$status,\"grpc_status\":\"$pw_grpc_status$upstream_trailer_grpc_status\","
    "\"consumer\":\"$pw_consumer\",\"upstream\":\"$upstream_addr\","
    "\"upstream_status\":\"$upstream_status\",\"request_time\":$request_time,"
    "\"upstream_time\":\"$upstream_response_time\",\"bytes_sent\":$bytes_sent}';"
)


def render(doc, keys, state, rest_listen=REST_LISTEN, grpc_listen=GRPC_LISTEN):
    """Return the nginx configuration text for a validated kong.yaml document."""
    pol = kongconf.policy(doc)
    check_supported(pol)
    ngx_dir = os.path.join(state, "nginx")
    tmp = os.path.join(ngx_dir, "tmp")
    logs = os.path.join(ngx_dir, "logs")
    lines = [
        "# Rendered by scripts/gateway/render.py from kong/kong.yaml and the local keys.",
        "# Do not edit: re-render (./plantwatch keys ... or ./plantwatch up).",
        "load_module %s/ndk_http_module.so;" % NGINX_MODULES,
        "load_module %s/ngx_http_lua_module.so;" % NGINX_MODULES,
        "",
        "daemon off;",
        "worker_processes 2;",
        "pid %s/nginx.pid;" % ngx_dir,
        "error_log %s/error.log notice;" % logs,
        "error_log stderr warn;",
        "",
        "events {",
        "    worker_connections 1024;",
        "}",
        "",
        "http {",
        "    server_tokens off;",
        "    default_type application/json;",
        "    client_max_body_size 16m;",
        "    client_body_buffer_size 1m;  # ingest batches stay in memory",
        "    client_body_temp_path %s/client_body;" % tmp,
        "    proxy_temp_path %s/proxy;" % tmp,
        "    fastcgi_temp_path %s/fastcgi;" % tmp,
        "    uwsgi_temp_path %s/uwsgi;" % tmp,
        "    scgi_temp_path %s/scgi;" % tmp,
        LOG_FORMAT,
        "    access_log %s/access.log pw_json;" % logs,
        "",
        '    lua_package_path "%s/?.lua;;";' % LUA_DIR,
        "    lua_shared_dict pw_ratelimit 16m;",
    ]
    lines += render_lua_init(pol, keys)
    rest, grpc = pol.service("rest"), pol.service("grpc")
    lines.append("")
    lines += render_upstream("pw_producer_rest", rest.targets)
    lines += render_upstream("pw_producer_grpc", grpc.targets)
    lines.append("")
    lines += render_server(rest, rest_listen, "pw_producer_rest", "service %s: REST (HTTP/1.1)" % rest.name)
    lines.append("")
    lines += render_server(grpc, grpc_listen + " http2", "pw_producer_grpc", "service %s: gRPC over h2c" % grpc.name)
    lines += ["}", ""]
    return "\n".join(lines)


def kong_with_keys(doc, keys):
    """kong.yaml with decK env references resolved from the keys file, for `kong start`.

    Consumers in the keys file but not in kong.yaml are added; consumers of
    kong.yaml without a key in the file are dropped (as `keys revoke` does)."""
    by_name = dict(keys)
    out = dict(doc)
    consumers = []
    for c in doc.get("consumers", []):
        if c["username"] in by_name:
            consumers.append({"username": c["username"], "keyauth_credentials": [{"key": by_name.pop(c["username"])}]})
    for name in sorted(by_name):
        consumers.append({"username": name, "keyauth_credentials": [{"key": by_name[name]}]})
    out["consumers"] = consumers
    return yaml.dump(out, Dumper=_NoAliasDumper, sort_keys=False, default_flow_style=False)


class _NoAliasDumper(yaml.SafeDumper):
    """Writes shared plugin blocks out in full: the output is for Kong, not for people."""

    def ignore_aliases(self, data):
        return True


def write_atomic(path, text, mode=0o600):
    """Write text to path via a temporary file and rename (readers never see half a file)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".render-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv=None):
    root = kongconf.ROOT
    state_default = os.environ.get("PW_STATE") or os.path.join(root, ".plantwatch")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kong", default=kongconf.DEFAULT_KONG_YAML, help="Kong declarative config")
    ap.add_argument("--state", default=state_default, help="state directory ($PW_STATE)")
    ap.add_argument("--keys", help="keys file (default STATE/secrets/gateway-keys)")
    ap.add_argument("--out", help="nginx.conf to write, '-' for stdout (default STATE/nginx/nginx.conf)")
    ap.add_argument("--kong-out", help="write kong.yaml with the keys filled in to this file instead")
    ap.add_argument("--rest-listen", default=REST_LISTEN)
    ap.add_argument("--grpc-listen", default=GRPC_LISTEN)
    args = ap.parse_args(argv)
    state = os.path.abspath(args.state)
    keys_path = args.keys or os.path.join(state, "secrets", "gateway-keys")
    try:
        doc = kongconf.load(args.kong)
        keys = read_keys(keys_path)
        if args.kong_out:
            write_atomic(args.kong_out, kong_with_keys(doc, keys))
            return 0
        text = render(doc, keys, state, args.rest_listen, args.grpc_listen)
    except kongconf.SchemaError as e:
        for err in e.errors:
            print("%s: %s" % (args.kong, err), file=sys.stderr)
        return 1
    except (RenderError, OSError) as e:
        print("render: %s" % e, file=sys.stderr)
        return 1
    out = args.out or os.path.join(state, "nginx", "nginx.conf")
    if out == "-":
        sys.stdout.write(text)
    else:
        write_atomic(out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
