"""nginx (Debian's nginx-light) serving the benchmark blobs as TLS static files: the limit.

Own config and prefix in a temp dir, ``daemon off``, a master and one worker per core, bound to
127.0.0.1 only; its certificate comes from fixtures.pki like every other server's. A blob is
served at ``/blobs/<hex>``: a symlink to the very file distribution serves.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from dtr_cache_check.pki import Issued
from dtr_cache_check.testkit.local import LocalServer, free_port

from .blobs import Blob

NGINX_BINARY = "/usr/sbin/nginx"

_CONFIG = """\
daemon off;
master_process on;
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/nginx.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    output_buffers 2 256k;
    keepalive_requests 100000;
    keepalive_timeout 120s;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        root {prefix}/html;
        location /blobs/ {{ }}
    }}
}}
"""


def start_nginx(workdir: Path, tls: Issued) -> LocalServer:
    """nginx under ``workdir/nginx``; ``publish`` makes a blob available."""
    prefix = workdir / "nginx"
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    (prefix / "html" / "blobs").mkdir(parents=True, exist_ok=True)
    cert, key = tls.write(prefix / "nginx.cert.pem", prefix / "nginx.key.pem")
    port = free_port()
    config = prefix / "nginx.conf"
    config.write_text(_CONFIG.format(workers=os.cpu_count() or 1, prefix=prefix, port=port,
                                     cert=cert, key=key))
    log_path = prefix / "nginx.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [NGINX_BINARY, "-p", str(prefix), "-c", str(config), "-e", str(log_path)],
            stdout=log, stderr=subprocess.STDOUT, cwd=prefix, start_new_session=True)
    return LocalServer("nginx", process, f"https://127.0.0.1:{port}", prefix, log_path, config)


def publish(nginx: LocalServer, blob: Blob) -> str:
    """Serve ``blob`` (a symlink to its file); return its path on nginx."""
    link = nginx.workdir / "html" / "blobs" / blob.hex
    if not link.is_symlink():
        link.symlink_to(blob.path)
    return f"/blobs/{blob.hex}"


def nginx_version() -> str:
    done = subprocess.run([NGINX_BINARY, "-v"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ")
