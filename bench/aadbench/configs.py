"""Configuration files of the contestants: the upstream and proxy nginx,
Apache with mod_auth_openidc, the dev IdP and aadgate."""

from __future__ import annotations

import secrets

from .testbed import CLIENT_ID, CLIENT_SECRET, TENANT, UPSTREAM_BODY


def nginx_upstream_conf(tmp, port, status_port):
    body = UPSTREAM_BODY
    return f"""
worker_processes 1;
pid {tmp}/upstream.pid;
error_log {tmp}/upstream-error.log warn;
user root root;
events {{ worker_connections 8192; }}
worker_rlimit_nofile 20000;
http {{
    access_log off;
    client_body_temp_path {tmp}/up-body; proxy_temp_path {tmp}/up-proxy;
    fastcgi_temp_path {tmp}/up-fcgi; uwsgi_temp_path {tmp}/up-uwsgi; scgi_temp_path {tmp}/up-scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server_tokens off;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            default_type text/html;
            return 200 "{body}";
        }}
    }}
    server {{
        listen 127.0.0.1:{status_port};
        location / {{ stub_status; }}
    }}
}}
"""


def nginx_proxy_conf(tmp, port, upstream_port, name="nginx-proxy", host="$host"):
    """nginx as a plain proxy to `upstream_port`, or round-robin over a
    list of ports (the replicas row, whose `Host` is the replicas' public
    URL, as a balancer in front of them at that URL would send)."""
    ports = upstream_port if isinstance(upstream_port, list) else [upstream_port]
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in ports)
    return f"""
worker_processes 1;
pid {tmp}/{name}.pid;
error_log {tmp}/{name}-error.log warn;
user root root;
events {{ worker_connections 8192; }}
worker_rlimit_nofile 20000;
http {{
    access_log off;
    client_body_temp_path {tmp}/{name}-body; proxy_temp_path {tmp}/{name}-proxy;
    fastcgi_temp_path {tmp}/{name}-fcgi; uwsgi_temp_path {tmp}/{name}-uwsgi; scgi_temp_path {tmp}/{name}-scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server_tokens off;
    upstream app {{
{servers}
        keepalive 256;                 # same idle pool as aadgate's (pool_max_idle_per_host 256)
        keepalive_requests 100000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host {host};
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
        }}
    }}
}}
"""


def apache_conf(tmp, port, upstream_port, idp_port):
    mods = "/usr/lib/apache2/modules"
    load = "\n".join(
        f"LoadModule {n}_module {mods}/mod_{f}.so"
        for n, f in [
            ("mpm_event", "mpm_event"),
            ("authn_core", "authn_core"),
            ("authz_core", "authz_core"),
            ("authz_user", "authz_user"),
            ("proxy", "proxy"),
            ("proxy_http", "proxy_http"),
            ("auth_openidc", "auth_openidc"),
        ]
    )
    return f"""
ServerRoot {tmp}
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {tmp}/apache.pid
DefaultRuntimeDir {tmp}/apache-run
Mutex file:{tmp}/apache-run default
ErrorLog {tmp}/apache-error.log
LogLevel warn
User www-data
Group www-data
{load}

# Debian's event MPM, with threads enough for every benchmark connection.
# With Debian's defaults (2-6 children x 25 threads) a child whose workers are
# all busy closes its idle keep-alive connections (event MPM behaviour), and
# wrk counts each as a read error; browsers would retry, but it would be
# counted against Apache here. So: 2 children x 600 threads, never retired.
ServerLimit             2
StartServers            2
ThreadLimit             600
ThreadsPerChild         600
MinSpareThreads         25
MaxSpareThreads         1200
MaxRequestWorkers       1200
MaxConnectionsPerChild  0
# keep-alive connections are not closed after 100 requests (nginx and aadgate
# do not close them either)
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 300
Timeout 60

OIDCProviderMetadataURL http://127.0.0.1:{idp_port}/{TENANT}/v2.0/.well-known/openid-configuration
OIDCClientID {CLIENT_ID}
OIDCClientSecret {CLIENT_SECRET}
OIDCRedirectURI http://127.0.0.1:{port}/redirect_uri
OIDCCryptoPassphrase {secrets.token_hex(16)}
OIDCScope "openid profile email"
OIDCPKCEMethod S256
# default session type (server-cache) and default cache (shm)

<Location />
    AuthType openid-connect
    Require valid-user
</Location>
ProxyPass /redirect_uri !
ProxyPass / http://127.0.0.1:{upstream_port}/
"""


def idp_conf(redirect_uris):
    uris = ", ".join(f'"{u}"' for u in redirect_uris)
    return f'redirect_uris = [{uris}]\n'


def aadgate_conf(port, upstream_port, idp_port, store_dir):
    return f"""
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
upstream = "http://127.0.0.1:{upstream_port}"

[oidc]
tenant = "{TENANT}"
issuer = "http://127.0.0.1:{idp_port}/{TENANT}/v2.0"
client_id = "{CLIENT_ID}"

[session]
store = "file:{store_dir}"

[authz]
roles = ["App.Read", "App.Write", "App.Admin"]

[[route]]
path = "/public"
public = true

[[route]]
path = "/api"
auth = "bearer"
"""
