"""Link faults in the fault run: one worker process reaches PostgreSQL through the loopback fault
proxy (tests/faults/proxy.py), which runs on an event loop of its own in a thread of the run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from anyio.from_thread import BlockingPortal, start_blocking_portal

from tests.faults.fleet import Run, log
from tests.faults.proxy import FaultProxy, fault_proxy, target_of, via

SLOW_FOR = 2.0  # seconds of 20 ms per chunk
SILENT_FOR = 4.0  # seconds of a link that answers nothing (longer than the workers' db_timeout)


@contextmanager
def link_proxy(run: Run) -> Iterator[tuple[BlockingPortal, FaultProxy]]:
    """Serve the proxy for the run's length; sets `run.proxied_url` for `start_worker`."""
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(fault_proxy(target_of(run.url))) as proxy,
    ):
        run.proxied_url = via(run.url, proxy.port)
        try:
            yield portal, proxy
        finally:
            run.proxied_url = None


def inject_link_fault(portal: BlockingPortal, proxy: FaultProxy, kind: str) -> None:
    if kind == "slow link":
        portal.call(proxy.latency, 0.02)
        time.sleep(SLOW_FOR)
        portal.call(proxy.latency, 0.0)
    elif kind == "reset link":
        log(f"  reset {portal.call(proxy.reset)} proxied connections")
    elif kind == "silent link":
        # the proxied worker's open connections hear nothing; new ones work (a middlebox lost flows)
        before = proxy.accepted
        portal.call(lambda: proxy.blackhole(True, new_connections=False))
        time.sleep(SILENT_FOR)
        portal.call(lambda: proxy.blackhole(False))
        # statements on the silent connections gave up after db_timeout; new connections replaced them
        log(f"  {proxy.accepted - before} new proxied connections while the old ones were silent")
