"""A loopback TCP proxy that puts network faults between notifyq and PostgreSQL.

Why it exists: the embedded test server (pgserver) listens on a Unix socket only, so a slow or
broken link needs a TCP hop of our own; toxiproxy would do it but is a Go binary, not on PyPI. The
proxy listens on 127.0.0.1 (an ephemeral port) and forwards each connection to the real server, a
Unix socket path or a TCP (host, port). Nothing leaves loopback. Its controls, called from the event
loop it runs on:

- `latency(seconds)`: every chunk waits that long before it is sent on, in both directions (chunks
  of one direction queue behind each other, so it slows throughput too, as a slow link does);
- `reset()`: closes every current connection at once, both sides (the client gets an RST);
- `blackhole(True)`: forwards nothing and closes nothing, a partition: bytes wait in the proxy and
  the kernels' buffers and flow again after `blackhole(False)`, as TCP's retransmits would deliver
  them. New connections are accepted but hear nothing, unless `new_connections=False` (a middlebox
  that lost its existing flows only). The kernel still answers TCP keepalives for the proxy, so
  only timeouts of the application itself can notice.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import ByteStream, SocketAttribute, SocketStream, TaskStatus
from psycopg.conninfo import conninfo_to_dict, make_conninfo

# a Unix socket path, or a TCP (host, port)
Target = str | tuple[str, int]

CHUNK = 65536
DEFAULT_PG_PORT = 5432
# SO_LINGER on, 0 s: close() sends an RST and drops unsent bytes, as a broken link would
_RST = struct.pack("ii", 1, 0)


def target_of(conninfo: str) -> Target:
    """Where `conninfo` points: `<dir>/.s.PGSQL.<port>` for a socket directory, else (host, port)."""
    info = conninfo_to_dict(conninfo)
    host = str(info.get("host") or "/tmp")  # PostgreSQL's compiled-in default socket directory
    port = int(info.get("port") or DEFAULT_PG_PORT)
    if host.startswith("/"):
        return f"{host}/.s.PGSQL.{port}"
    return (host, port)


def via(conninfo: str, port: int) -> str:
    """`conninfo` (same database, user, options) reached through the proxy on 127.0.0.1:`port`."""
    info: dict[str, Any] = {k: v for k, v in conninfo_to_dict(conninfo).items() if k != "hostaddr"}
    info.update(host="127.0.0.1", port=port)
    return make_conninfo("", **info)


@dataclass(eq=False)
class _Link:
    client: SocketStream
    flowing: anyio.Event = field(default_factory=anyio.Event)  # unset: blackholed
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)


@asynccontextmanager
async def fault_proxy(target: Target) -> AsyncIterator[FaultProxy]:
    """A proxy to `target`, listening (`proxy.port` set) for the length of the block."""
    proxy = FaultProxy(target)
    async with anyio.create_task_group() as tg:
        await tg.start(proxy.serve)
        try:
            yield proxy
        finally:
            tg.cancel_scope.cancel()


class FaultProxy:
    """The proxy and its fault switches (see the module docstring); run it with `fault_proxy`."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.port = 0
        self.accepted = 0  # connections accepted so far
        self.resets = 0  # connections closed by reset()
        self._delay = 0.0
        self._hole_new = False  # connections accepted from now on start blackholed
        self._links: set[_Link] = set()

    @property
    def open_connections(self) -> int:
        return len(self._links)

    def latency(self, seconds: float) -> None:
        self._delay = seconds

    def blackhole(self, on: bool, *, new_connections: bool = True) -> None:
        """Stop (or resume) forwarding on every current connection, and on new ones unless
        `new_connections` is False (a middlebox that lost its existing flows only)."""
        for link in self._links:
            if not on:
                link.flowing.set()
            elif link.flowing.is_set():
                link.flowing = anyio.Event()
        self._hole_new = on and new_connections

    def reset(self) -> int:
        """Close every current connection abruptly; returns how many."""
        links = list(self._links)
        for link in links:
            raw = link.client.extra(SocketAttribute.raw_socket)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
            link.scope.cancel()
        self.resets += len(links)
        return len(links)

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; `task_status.started()` once `port` is set."""
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        async with listener:
            self.port = listener.extra(SocketAttribute.local_port)
            task_status.started()
            await listener.serve(self._handle)

    async def _connect(self) -> SocketStream:
        if isinstance(self.target, tuple):
            return await anyio.connect_tcp(*self.target)
        # not anyio.connect_unix: its streams read the raw socket, and on asyncio a read cancelled
        # as data arrives can raise InvalidStateError from a loop callback (the kind of race of
        # anyio#1267), which the test runner reports; a stream over an asyncio transport cannot
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.target)  # a local socket: connects at once or fails
            return await SocketStream.from_socket(sock)
        except BaseException:
            sock.close()
            raise

    async def _handle(self, client: SocketStream) -> None:
        link = _Link(client)
        if not self._hole_new:
            link.flowing.set()
        self.accepted += 1
        self._links.add(link)
        try:
            with link.scope:
                async with client, await self._connect() as server, anyio.create_task_group() as tg:
                    tg.start_soon(self._pump, client, server, link)
                    tg.start_soon(self._pump, server, client, link)
        except OSError:
            pass  # the server refused the connection: the client sees it closed
        finally:
            self._links.discard(link)

    async def _pump(self, source: ByteStream, sink: ByteStream, link: _Link) -> None:
        """Copy one direction; at EOF pass the half-close on, on any break close the whole link."""
        try:
            async for chunk in source:
                if self._delay:
                    await anyio.sleep(self._delay)
                await link.flowing.wait()
                await sink.send(chunk)
            await link.flowing.wait()
            await sink.send_eof()
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            link.scope.cancel()
