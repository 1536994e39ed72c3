"""The app served by uvicorn on loopback in a thread, for tests that need real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from soc_core.devnode import free_port
from tests.support.waiting import wait_for


@contextmanager
def serve(app: ASGIApp, *, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 while the block runs; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="test-api-server", daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "the API server thread died while starting"
        return bool(server.started)

    try:
        wait_for(started, "the API server to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
