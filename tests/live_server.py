"""A real Uvicorn server in a thread, for the service tests that need sockets (keep-alive, timeouts, streams)."""

from __future__ import annotations

import contextlib
import threading
import time


@contextlib.contextmanager
def running_server(app, **options):
    """Uvicorn on a free loopback port (port 0: the OS picks); yields ``(base URL, port)``; stops on exit."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", **options)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", port
    finally:
        server.should_exit = True
        thread.join(15)
