"""A loopback HTTP server for tests of remote inputs: it serves a folder on 127.0.0.1 (never beyond),
with Range support and ETags, and with faults chosen by the first path segment:

  /ok/<file>        the file as is
  /drop/<file>      the first GET of each file stops half-way through the body (connection closed)
  /flaky/<file>     503 twice, then the file
  /short/<file>     every answer advertises 1,000 bytes more than it sends
  /norange/<file>   no Range support, and the first GET stops half-way
  /changing/<file>  the first GET stops half-way; later answers carry another ETag
  /slow/<file>      the body in 64 KB pieces, 50 ms apart (something to interrupt)
  anything missing  404
"""

from __future__ import annotations

import hashlib
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("ok", "drop", "flaky", "short", "norange", "changing", "slow")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root = "."
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def log_message(self, *args):  # quiet
        pass

    def _file(self):
        parts = self.path.split("?", 1)[0].lstrip("/").split("/", 1)
        if len(parts) != 2 or parts[0] not in FAULTS:
            return None, None
        path = os.path.join(self.root, parts[1])
        return parts[0], path if os.path.isfile(path) else None

    def _count(self) -> int:
        with self.lock:
            self.counts[self.path] = self.counts.get(self.path, 0) + 1
            if self.headers.get("Range"):
                self.ranged.append(self.path)
                self.ranges_asked.append((self.path, self.headers["Range"]))
            return self.counts[self.path]

    def do_HEAD(self):
        self._serve(body=False)

    def do_GET(self):
        self._serve(body=True)

    def _serve(self, body: bool):
        fault, path = self._file()
        if path is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        n = self._count() if body else 0
        if fault == "flaky" and body and n <= 2:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = open(path, "rb").read()
        etag = '"' + hashlib.md5(data).hexdigest()[:16] + '"'
        if fault == "changing" and n > 1:
            etag = '"changed"'
        start, end = 0, len(data)
        rng = self.headers.get("Range")
        ranges = fault != "norange"
        if rng and ranges and rng.startswith("bytes=") and self.headers.get("If-Range", etag) == etag:
            first, _, last = rng[len("bytes=") :].partition("-")
            start, end = int(first), min(len(data), int(last) + 1 if last else len(data))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        else:
            self.send_response(200)
        chunk = data[start:end]
        if body:
            with self.lock:
                self.sent.append((self.path, start, len(chunk)))
        self.send_header("Content-Length", str(len(chunk) + (1000 if fault == "short" else 0)))
        self.send_header("ETag", etag)
        if ranges:
            self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if not body:
            return
        if fault in ("drop", "norange", "changing") and n == 1 and len(chunk) > 1:
            self.wfile.write(chunk[: len(chunk) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if fault == "slow":
            import time

            for i in range(0, len(chunk), 1 << 16):
                self.wfile.write(chunk[i : i + (1 << 16)])
                self.wfile.flush()
                time.sleep(0.05)
            return
        self.wfile.write(chunk)
        if fault == "short":
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that hung up mid-body: expected here
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
            super().handle_error(request, client_address)


class LoopbackServer:
    """`with LoopbackServer(folder) as url:` → "http://127.0.0.1:PORT"."""

    def __init__(self, root: str):
        handler = type(
            "Handler",
            (_Handler,),
            {"root": root, "counts": {}, "ranged": [], "ranges_asked": [], "sent": [], "lock": threading.Lock()},
        )
        self.server = _Server(("127.0.0.1", 0), handler)
        self.handler = handler
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def gets(self, path: str) -> int:
        return self.handler.counts.get(path, 0)
