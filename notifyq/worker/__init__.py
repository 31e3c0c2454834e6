"""The worker: listener, waker, claimer, executor, completer and heartbeat in one anyio task group.

Rules it keeps:
- Notifications are hints. The listener only wakes the claimer (it never runs SQL on its
  connection besides LISTEN and a liveness check); after every (re)connect the claimer claims at
  once, and a slow poll bounds any missed hint.
- Claims take as many jobs as there are free slots, in one statement, and repeat while batches come
  back full. Outcomes are written in batches; one statement extends every lease the worker holds.
- Every finishing write carries the claim token (worker id, attempt): a job rescued from this worker
  cannot be finished by it. A write that matched nothing is logged and counted, never retried.
- Database errors never kill the worker: each part backs off and tries again; outcomes stay
  buffered until written (or until the lease they belong to is gone).
- Shutdown: stop claiming, let running jobs finish for `shutdown_timeout`, then cancel the rest and
  hand their leases back (the attempt does not count) so they run elsewhere at once.
"""

from notifyq.worker.worker import Worker, WorkerCounters

__all__ = ["Worker", "WorkerCounters"]
