"""The HTTP API: jobs, leases for workers in other languages, queues, workers, metrics, a dashboard.

Routes call `notifyq.client.Client` and never SQL. Errors are RFC 9457 problem details with a
stable `code`. A lease long-poll sleeps on the API's one listener connection (LISTEN/NOTIFY), shared
by every waiting request; the API registers itself as a worker so producers notify it.
"""

from notifyq.api.app import create_app

__all__ = ["create_app"]
