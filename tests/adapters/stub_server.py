"""The loopback HTTP server behind the external-API stubs (place search, geocoders, credit engine): an
ephemeral port on 127.0.0.1, one thread, the stub object handed to the handler class."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

S = TypeVar("S")


class JsonStubHandler(BaseHTTPRequestHandler):
    """Quiet handler with a JSON `_send` that tolerates clients giving up (timeout tests)."""

    def _send(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        pass


@contextmanager
def serve(handler: type[BaseHTTPRequestHandler], make_stub: Any, name: str) -> Iterator[Any]:
    """Serve `handler` (a fresh subclass gets the stub) for the block; `make_stub(base_url)` builds the stub."""
    cls = type(f"{handler.__name__}Bound", (handler,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), cls)
    server.daemon_threads = True
    server.block_on_close = False
    stub = make_stub(f"http://127.0.0.1:{server.server_address[1]}")
    cls.stub = stub
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
