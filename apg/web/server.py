"""A uvicorn server in a background thread, for browser tests and the screenshot script."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

START_TIMEOUT = 10.0  # seconds


@contextmanager
def serve_in_thread(app: ASGIApp, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` on a free port of ``host``; yields the base URL, stops on exit."""
    # proxy_headers off, as `apg serve` runs it: which forwarded headers to believe is the
    # app's decision (--trust-proxy), not uvicorn's.
    config = uvicorn.Config(
        app,
        host=host,
        port=0,
        log_level="warning",
        server_header=False,
        lifespan="off",
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="apg-web-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the test server did not start on {host} within {START_TIMEOUT}s")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT)


# Debian's Chromium as the browser tests and scripts/screenshots.py drive it (Playwright with
# executable_path; never `playwright install`). The flags keep it off this machine's closed
# network and working as root in a container.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
