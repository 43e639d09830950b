"""A real RTMP server on loopback for tests and benchmarks: Debian's nginx with its RTMP module.

The server relays what a publisher sends to every player of the same `rtmp://…/live/NAME`, and
serves nginx-rtmp's control endpoint (`http://…/control`), through which a stream is cut.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")

_CONFIG = """\
load_module {module};
daemon off;
master_process off;
worker_processes 1;
error_log {root}/error.log warn;
pid {root}/nginx.pid;
events {{ worker_connections 256; }}
rtmp {{
  server {{
    listen 127.0.0.1:{rtmp_port};
    chunk_size 4096;
    application live {{
      live on;
      record off;
      # Players are told when a publisher stops, so that they see the stream end.
      play_restart on;
    }}
  }}
}}
http {{
  access_log off;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
  server {{
    listen 127.0.0.1:{http_port};
    location /control {{ rtmp_control all; }}
  }}
}}
"""


@dataclass(frozen=True)
class RtmpServer:
    rtmp_port: int
    http_port: int

    def stream_url(self, name: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{name}"

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/control"


def rtmp_server_available() -> bool:
    return shutil.which("nginx") is not None and RTMP_MODULE.exists()


@contextmanager
def running_rtmp_server() -> Iterator[RtmpServer]:
    """An nginx-rtmp server on free loopback ports, for as long as the context lasts."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    with tempfile.TemporaryDirectory(prefix="firebreak-rtmp-") as root:
        server = RtmpServer(_free_port(), _free_port())
        config = Path(root) / "nginx.conf"
        config.write_text(
            _CONFIG.format(
                module=RTMP_MODULE,
                root=root,
                rtmp_port=server.rtmp_port,
                http_port=server.http_port,
            )
        )
        process = subprocess.Popen(
            [nginx, "-p", root, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_for_port(server.rtmp_port, process)
            _wait_for_port(server.http_port, process)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"nginx exited: {stderr.strip()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nginx did not listen on port {port} within {timeout_s} s")
