"""A local HTTP server for the HTTP task tests: well-behaved and hostile answers by path.

stdlib `ThreadingHTTPServer` on a free loopback port in a background thread,
so it serves both Trio tests and the blocking daemon tests.  Paths:

/echo            200 JSON: method, path, headers, body (as text)
/text            200 text/plain
/status/CODE     CODE with a JSON error body
/empty           204, no body
/slow-head?ms=N  waits N ms, then 200 JSON
/slow-body       announces 10 bytes, sends 2, stalls 5 s
/huge            announces and streams 5 MB
/huge-head       200 KB of headers
/garbage         a line that is not HTTP, then closes
/close           closes without answering
"""

from __future__ import annotations

import json
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _json(self, status: int, doc: object) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Multi", "a")
        self.send_header("X-Multi", "b")
        self.end_headers()
        self.wfile.write(data)

    def _serve(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = url.path
        if path == "/echo":
            self._json(
                200,
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode(),
                },
            )
        elif path == "/text":
            data = b"plain words"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            self._json(code, {"error": f"status {code} on purpose"})
        elif path == "/empty":
            self.send_response(204)
            self.end_headers()
        elif path == "/slow-head":
            time.sleep(int(parse_qs(url.query)["ms"][0]) / 1000)
            self._json(200, {"slow": True})
        elif path == "/slow-body":
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.end_headers()
            self.wfile.write(b"ab")
            self.wfile.flush()
            time.sleep(5)
        elif path == "/huge":
            self.send_response(200)
            self.send_header("Content-Length", str(5 * 1024 * 1024))
            self.end_headers()
            chunk = b"h" * 65536
            try:
                for _ in range(80):
                    self.wfile.write(chunk)
            except OSError:
                pass  # the client hung up at its limit
        elif path == "/huge-head":
            self.send_response(200)
            for i in range(2000):
                self.send_header(f"X-Filler-{i}", "f" * 100)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/garbage":
            self.wfile.write(b"THIS IS NOT HTTP\r\n\r\n")
            self.close_connection = True
        elif path == "/close":
            self.close_connection = True
        else:
            self._json(404, {"error": "no such path"})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a stalled handler must not hold up the test's end

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # clients hang up on purpose
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@contextmanager
def http_test_server(tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """Yields the base URL (http[s]://127.0.0.1:PORT) of a running server."""
    server = _Server(("127.0.0.1", 0), _Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        scheme = "https" if tls is not None else "http"
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
