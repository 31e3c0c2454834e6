"""The leader: one worker per database runs the maintenance services.

Election: whoever holds `pg_try_advisory_lock(leader key)` on its own session connection leads.
A leader whose connection drops stops leading at once (the lock went with the session); the other
candidates try every `leader_tick`, so a new leader runs within about a second of the old one's
death. Two leaders can overlap briefly only through a network partition; every service is safe
under overlap (rescue uses SKIP LOCKED and claim tokens, cron relies on a unique key per slot).

Services, each a `run_once()` returning what it did:
- rescue: workers hold an advisory lock keyed by their id on their listening connection; a lock
  the leader can take on two probes `dead_confirm` apart proves the worker's session is gone, and its
  running jobs go back to queued (or failed, if that was their last attempt) at once. Jobs whose
  lease expired (a worker alive but silent) are rescued the same way. After gaining leadership
  (e.g. after a database restart dropped every lock at once) the lock test waits `rescue_grace`.
- cron: enqueues each due slot of each periodic task with a unique key per task and slot.
- prune: deletes finished jobs past their retention in small batches.
- guard: reads pg_notification_queue_usage() and warns past a threshold.
A failing service is logged and retried at its next interval; it never stops the others.
"""

from notifyq.leader.elector import Elector
from notifyq.leader.service import Maintenance

__all__ = ["Elector", "Maintenance"]
