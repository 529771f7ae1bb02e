"""Serve the real app on a free 127.0.0.1 port from a thread, for clients that need a live server
(browsers, GDAL, OWSLib). The app uses the session's migrated test database: committed data only."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from werkzeug.serving import make_server

from geo_core.config import Settings


@contextmanager
def serve_app(settings: Settings, name: str = "live-server") -> Iterator[str]:
    from api import create_app

    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        app.extensions["gridmarket"].engine.dispose()
