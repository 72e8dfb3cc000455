"""hello-web: a tiny HTTP service (stdlib only) that reports its version and health.

GET /          -> "hello from hello-web <version>"
GET /version   -> the version, as plain text
GET /healthz   -> 200 "ok" (503 while the file named by HEALTH_FAIL_FILE exists)
GET /visits    -> a counter kept in $DATA_DIR/visits (a named volume survives redeploys)
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VERSION = os.environ.get("APP_VERSION", "dev")
DATA_DIR = Path(os.environ.get("DATA_DIR", "/data"))


def count_visit() -> int:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / "visits"
    visits = int(path.read_text() or "0") + 1 if path.exists() else 1
    path.write_text(str(visits))
    return visits


def healthy() -> bool:
    marker = os.environ.get("HEALTH_FAIL_FILE")
    return not (marker and Path(marker).exists())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/healthz":
            status, body = (200, "ok") if healthy() else (503, "unhealthy")
        elif self.path == "/version":
            status, body = 200, VERSION
        elif self.path == "/visits":
            status, body = 200, str(count_visit())
        elif self.path == "/":
            status, body = 200, f"hello from hello-web {VERSION}"
        else:
            status, body = 404, "not found"
        data = (body + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


class Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for requests in flight
    block_on_close = True


def main() -> None:
    port = int(os.environ.get("PORT", "8000"))
    server = Server(("0.0.0.0", port), Handler)

    # As PID 1 in a container, SIGTERM is ignored unless handled. On `docker stop`: stop accepting,
    # finish the requests in flight, then exit (shutdown() must run outside serve_forever's thread).
    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"hello-web {VERSION} listening on :{port}", flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
