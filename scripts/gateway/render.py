#!/usr/bin/env python3
"""Render the local nginx gateway from kong/kong.yaml and the local credentials.

This tool owns the translation of the Kong policy into an nginx configuration
(with the Lua module scripts/gateway/lua/pw_gateway.lua doing key-auth, acl,
rate-limiting, the request-transformer's headers and the throttling of failed
authentication). The output depends only on its inputs: rendering twice gives
identical bytes, so a changed file always means a changed policy or key set.

    render.py [--kong kong/kong.yaml] [--credentials FILE] [--secret FILE] [--state DIR] [--out FILE|-]
    render.py --kong-out FILE --keys FILE   # kong.yaml with keys and secret filled in, for `kong start`

Credentials file (the gateway's; no key in it): one consumer a line,
`<consumer-name> <group>[,<group>...] sha256:<hex digest of the key>`; `#` starts a comment.
Keys file (for --kong-out): `<consumer-name> <api-key> [<group>]` (group default `ingest`).
Secret file: the shared secret the gateway sends to the producers as X-Gateway-Token.
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
GROUP_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
# At least 128 bits: 32 hex characters (or 22+ of base64) and up to 256.
API_KEY_RE = re.compile(r"^[A-Za-z0-9._~+/=-]{32,256}$")
KEY_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
SECRET_RE = re.compile(r"^[A-Za-z0-9._~+/=-]{32,512}$")
SECRET_ENV = "DECK_GATEWAY_SECRET"
# Failed authentication from one client address: at most AUTH_FAILURES in a
# fixed window of AUTH_WINDOW seconds, then 429 until the window ends.
AUTH_FAILURES = int(os.environ.get("PW_GATEWAY_AUTH_FAILURES", "20"))
AUTH_WINDOW = int(os.environ.get("PW_GATEWAY_AUTH_WINDOW_S", "10"))
# An exact path in Kong's regex syntax: ~/literal$ with only \. escaped.
EXACT_PATH_RE = re.compile(r"^~(/(?:[A-Za-z0-9_/-]|\\\.)*)\$$")


class RenderError(Exception):
    pass


def _lines(path):
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if line:
                yield lineno, line.split()


def read_credentials(path):
    """Parse the credentials file into a sorted list of (username, [groups], hash)."""
    entries, names, hashes = [], set(), set()
    for lineno, parts in _lines(path):
        if len(parts) != 3:
            raise RenderError("%s:%d: expected '<consumer-name> <groups> sha256:<hex>'" % (path, lineno))
        name, groups, digest = parts
        if not CONSUMER_NAME_RE.match(name):
            raise RenderError("%s:%d: invalid consumer name '%s'" % (path, lineno, name))
        groups = groups.split(",")
        if not all(GROUP_RE.match(g) for g in groups):
            raise RenderError("%s:%d: invalid group list for '%s'" % (path, lineno, name))
        if not KEY_HASH_RE.match(digest):
            raise RenderError("%s:%d: the key of '%s' must be stored as sha256:<64 hex digits>" % (path, lineno, name))
        if name in names:
            raise RenderError("%s:%d: consumer '%s' listed twice" % (path, lineno, name))
        if digest in hashes:
            raise RenderError("%s:%d: key of '%s' is already used by another consumer" % (path, lineno, name))
        names.add(name)
        hashes.add(digest)
        entries.append((name, sorted(groups), digest))
    return sorted(entries)


def read_keys(path):
    """Parse a keys file (plaintext, for --kong-out) into sorted (username, key, group)."""
    entries, names = [], set()
    for lineno, parts in _lines(path):
        if len(parts) not in (2, 3):
            raise RenderError("%s:%d: expected '<consumer-name> <api-key> [<group>]'" % (path, lineno))
        name, key = parts[0], parts[1]
        group = parts[2] if len(parts) == 3 else "ingest"
        if not CONSUMER_NAME_RE.match(name):
            raise RenderError("%s:%d: invalid consumer name '%s'" % (path, lineno, name))
        if not API_KEY_RE.match(key):
            raise RenderError("%s:%d: invalid key for '%s' (32-256 of A-Z a-z 0-9 . _ ~ + / = -)" % (path, lineno, name))
        if not GROUP_RE.match(group):
            raise RenderError("%s:%d: invalid group '%s'" % (path, lineno, group))
        if name in names:
            raise RenderError("%s:%d: consumer '%s' listed twice" % (path, lineno, name))
        names.add(name)
        entries.append((name, key, group))
    return sorted(entries)


def read_secret(path):
    with open(path, encoding="utf-8") as f:
        secret = f.read().strip()
    if not SECRET_RE.match(secret):
        raise RenderError("%s: the gateway secret must be 32-512 of A-Z a-z 0-9 . _ ~ + / = -" % path)
    return secret


def lua_str(s):
    """A Lua string literal; only characters allowed in names, hashes and paths reach here."""
    return '"' + "".join(c if c.isalnum() or c in "._~+/=-|: ," else "\\%d" % ord(c) for c in s) + '"'


def nginx_time(ms):
    return "%dms" % ms


def exact_path(path):
    """The literal of an exact route path (~/literal$), or None for a prefix path."""
    if not path.startswith("~"):
        return None
    m = EXACT_PATH_RE.match(path)
    if not m:
        raise RenderError("regex path '%s' is not supported locally (only exact paths ~/literal$)" % path)
    return m.group(1).replace("\\.", ".")


def check_supported(pol):
    for svc in pol.services:
        if svc.algorithm != "round-robin":
            raise RenderError("service %s: upstream algorithm '%s' is not supported locally" % (svc.name, svc.algorithm))
        if not svc.targets:
            raise RenderError("service %s: upstream has no target" % svc.name)
        for route in svc.routes:
            for path in route.paths:
                exact_path(path)
            if svc.kind == "rest" and route.strip_path:
                raise RenderError("route %s: strip_path is not supported locally" % route.name)
        rl = svc.plugins.get("rate-limiting")
        if rl is not None:
            if rl.get("policy", "local") != "local":
                raise RenderError("service %s: rate-limiting policy '%s' is not supported locally" % (svc.name, rl["policy"]))
            if rl.get("limit_by", "consumer") not in ("consumer", "credential", "ip"):
                raise RenderError("service %s: rate-limiting limit_by '%s' is not supported locally" % (svc.name, rl["limit_by"]))
            for period in kongconf.RATE_PERIODS:
                if period in rl and period not in PERIOD_SECONDS:
                    raise RenderError("service %s: rate-limiting period '%s' is not supported locally" % (svc.name, period))
        rt = svc.plugins.get("request-transformer")
        if rt is not None:
            extra = sorted(set(rt) - {"remove", "add"})
            parts = sorted(set(rt.get("remove", {})) | set(rt.get("add", {})))
            if extra or parts not in ([], ["headers"]):
                raise RenderError("service %s: request-transformer supports only remove/add of headers locally" % svc.name)


def _lua_bool(v):
    return "true" if v else "false"


def _num(v):
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _lua_set(values):
    return "{%s}" % ", ".join("[%s] = true" % lua_str(v) for v in values)


def render_transformer(rt, secret):
    """The request-transformer's header edits; the secret replaces its decK reference."""
    lines = ["            headers = {", "                remove = {%s}," % ", ".join(
        lua_str(h) for h in rt.get("remove", {}).get("headers", [])), "                add = {"]
    for item in rt.get("add", {}).get("headers", []):
        name, _, value = item.partition(":")
        ref = kongconf.DECK_ENV_RE.match(value)
        if ref:
            if ref.group(1) != SECRET_ENV:
                raise RenderError("request-transformer: only %s can be filled in locally" % SECRET_ENV)
            value = secret
        lines.append("                    {%s, %s}," % (lua_str(name), lua_str(value)))
    lines += ["                },", "            },"]
    return lines


def render_lua_service(svc, secret):
    """The Lua table of one service's plugin settings."""
    lines = ["        [%s] = {" % lua_str(svc.name), "            kind = %s," % lua_str(svc.kind)]
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
    acl = svc.plugins.get("acl")
    if acl is not None:
        lines += [
            "            acl = {",
            "                allow = %s," % (_lua_set(acl["allow"]) if acl.get("allow") else "nil"),
            "                deny = %s," % (_lua_set(acl["deny"]) if acl.get("deny") else "nil"),
            "                hide_groups_header = %s," % _lua_bool(acl.get("hide_groups_header", False)),
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
    rt = svc.plugins.get("request-transformer")
    if rt is not None:
        lines += render_transformer(rt, secret)
    lines.append("        },")
    return lines


def render_lua_init(pol, credentials, secret, auth_failures, auth_window):
    lines = [
        "    init_by_lua_block {",
        '        require("pw_gateway").init({',
        '        dict = "pw_ratelimit",',
        '        authfail_dict = "pw_authfail",',
        "        auth_throttle = {failures = %d, window = %d}," % (auth_failures, auth_window),
        "        consumers = {",
    ]
    for name, groups, digest in credentials:
        lines.append("            [%s] = {username = %s, groups = %s}," % (
            lua_str(digest.split(":", 1)[1]), lua_str(name), _lua_set(groups)))
    lines += ["        },", "        services = {"]
    for svc in pol.services:
        lines += ["    " + line for line in render_lua_service(svc, secret)]
    lines += ["        },", "        })", "    }"]
    return lines


def upstream_name(svc):
    return "pw_" + re.sub(r"[^A-Za-z0-9]", "_", svc.upstream)


def render_upstreams(pol):
    lines, seen = [], set()
    for svc in pol.services:
        name = upstream_name(svc)
        if name in seen:
            continue
        seen.add(name)
        lines.append("    upstream %s {" % name)
        for t in svc.targets:
            lines.append("        server %s max_fails=0;" % t)
        lines += ["        keepalive 32;", "    }"]
    return lines


def _proxy_lines(svc, exact):
    t, up = svc.timeouts, upstream_name(svc)
    if svc.kind == "rest":
        # An exact route forwards the normalised path: what nginx matched is what the upstream sees.
        target = "http://%s$uri$is_args$args" % up if exact else "http://%s" % up
        return [
            "            proxy_pass %s;" % target,
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
    return [
        "            grpc_pass grpc://%s;" % up,
        "            grpc_set_header X-Real-IP $remote_addr;",
        "            grpc_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "            grpc_connect_timeout %s;" % nginx_time(t["connect"]),
        "            grpc_read_timeout %s;" % nginx_time(t["read"]),
        "            grpc_send_timeout %s;" % nginx_time(t["write"]),
        "            grpc_next_upstream error timeout;",
        "            grpc_next_upstream_tries %d;" % (t["retries"] + 1),
    ]


def render_locations(svc):
    out = []
    for route in svc.routes:
        methods = ",".join(route.methods)
        for path in route.paths:
            exact = exact_path(path)
            out.append("        # route %s (service %s)" % (route.name, svc.name))
            out.append("        location %s {" % ("= " + exact if exact else path))
            out.append('            access_by_lua_block { require("pw_gateway").access(%s, %s) }' % (
                lua_str(svc.name), lua_str(methods)))
            out.append('            header_filter_by_lua_block { require("pw_gateway").header_filter() }')
            out += _proxy_lines(svc, exact)
            out.append("        }")
    return out


def render_server(pol, kind, listen, comment):
    lines = [
        "    # %s" % comment,
        "    server {",
        "        listen %s;" % listen,
        '        set $pw_consumer "";',
        '        set $pw_grpc_status "";',
    ]
    for svc in pol.services:
        if svc.kind == kind:
            lines += render_locations(svc)
    lines += [
        "        # Kong answers a path no route matches with 404",
        "        location / {",
        '            content_by_lua_block { require("pw_gateway").no_route("%s") }' % kind,
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


def render(doc, credentials, secret, state, rest_listen=REST_LISTEN, grpc_listen=GRPC_LISTEN,
           auth_failures=AUTH_FAILURES, auth_window=AUTH_WINDOW):
    """Return the nginx configuration text for a validated kong.yaml document."""
    pol = kongconf.policy(doc)
    check_supported(pol)
    ngx_dir = os.path.join(state, "nginx")
    tmp = os.path.join(ngx_dir, "tmp")
    logs = os.path.join(ngx_dir, "logs")
    lines = [
        "# Rendered by scripts/gateway/render.py from kong/kong.yaml and the local credentials.",
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
        "    lua_shared_dict pw_authfail 4m;",
    ]
    lines += render_lua_init(pol, credentials, secret, auth_failures, auth_window)
    lines.append("")
    lines += render_upstreams(pol)
    lines.append("")
    lines += render_server(pol, "rest", rest_listen, "REST services (HTTP/1.1)")
    lines.append("")
    lines += render_server(pol, "grpc", grpc_listen + " http2", "gRPC services over h2c")
    lines += ["}", ""]
    return "\n".join(lines)


def _resolve_secret_refs(value, secret):
    if isinstance(value, dict):
        return {k: _resolve_secret_refs(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_secret_refs(v, secret) for v in value]
    if isinstance(value, str) and ('${{ env "%s" }}' % SECRET_ENV) in value:
        return value.replace('${{ env "%s" }}' % SECRET_ENV, secret)
    return value


def kong_with_keys(doc, keys, secret):
    """kong.yaml with decK env references resolved from the keys and secret files, for `kong start`.

    Consumers in the keys file but not in kong.yaml are added; consumers of
    kong.yaml without a key in the file are dropped (as `keys revoke` does)."""
    by_name = {name: (key, group) for name, key, group in keys}
    out = _resolve_secret_refs(dict(doc), secret)
    consumers = []
    for c in doc.get("consumers", []):
        if c["username"] in by_name:
            key, group = by_name.pop(c["username"])
            consumers.append({"username": c["username"], "keyauth_credentials": [{"key": key}],
                              "acls": [{"group": group}]})
    for name in sorted(by_name):
        key, group = by_name[name]
        consumers.append({"username": name, "keyauth_credentials": [{"key": key}], "acls": [{"group": group}]})
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
    ap.add_argument("--credentials", help="hashed credentials (default STATE/secrets/gateway-credentials)")
    ap.add_argument("--secret", help="gateway secret file (default STATE/secrets/gateway-secret)")
    ap.add_argument("--keys", help="plaintext keys file, for --kong-out")
    ap.add_argument("--out", help="nginx.conf to write, '-' for stdout (default STATE/nginx/nginx.conf)")
    ap.add_argument("--kong-out", help="write kong.yaml with the keys and the secret filled in to this file instead")
    ap.add_argument("--rest-listen", default=REST_LISTEN)
    ap.add_argument("--grpc-listen", default=GRPC_LISTEN)
    ap.add_argument("--auth-failures", type=int, default=AUTH_FAILURES,
                    help="failed authentications per client address and window before 429 ($PW_GATEWAY_AUTH_FAILURES)")
    ap.add_argument("--auth-window", type=int, default=AUTH_WINDOW,
                    help="length of that window in seconds ($PW_GATEWAY_AUTH_WINDOW_S)")
    args = ap.parse_args(argv)
    state = os.path.abspath(args.state)
    secret_path = args.secret or os.path.join(state, "secrets", "gateway-secret")
    if args.auth_failures < 1 or args.auth_window < 1:
        print("render: --auth-failures and --auth-window must be at least 1", file=sys.stderr)
        return 1
    try:
        doc = kongconf.load(args.kong)
        secret = read_secret(secret_path)
        if args.kong_out:
            if not args.keys:
                raise RenderError("--kong-out needs --keys (Kong compares plaintext keys)")
            write_atomic(args.kong_out, kong_with_keys(doc, read_keys(args.keys), secret))
            return 0
        credentials = read_credentials(args.credentials or os.path.join(state, "secrets", "gateway-credentials"))
        text = render(doc, credentials, secret, state, args.rest_listen, args.grpc_listen,
                      args.auth_failures, args.auth_window)
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
