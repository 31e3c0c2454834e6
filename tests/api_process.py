"""A real `notifyq api` process on a free loopback port, for the tests that speak HTTP to it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@contextmanager
def api_process(database_url: str, token: str) -> Iterator[str]:
    """Start `notifyq api` against `database_url`; yields its base URL once /healthz answers 200."""
    port = free_port()
    cmd = [sys.executable, "-m", "notifyq.cli.main", "api", "--bind", f"127.0.0.1:{port}", "--token", token]
    proc = subprocess.Popen(cmd, env={**os.environ, "DATABASE_URL": database_url})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "notifyq api exited"
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)  # waiting for the process to bind; there is no event to wait on
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=15)
