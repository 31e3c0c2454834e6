"""`notifyq api --bind 127.0.0.1:8080 [--token ...]`: serve the HTTP API and dashboard with uvicorn.

A bearer token is required when binding a non-loopback address: the API can enqueue, cancel and
finish jobs, so it refuses to start open to the network.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from notifyq.cli.common import add_connection_options, is_loopback, parse_bind, settings_from
from notifyq.errors import ConfigError
from notifyq.settings import split_queues


def register(subparsers: Any) -> None:
    api: argparse.ArgumentParser = subparsers.add_parser("api", help="serve the HTTP API and dashboard")
    api.add_argument("--bind", default="127.0.0.1:8080", help="HOST:PORT (default 127.0.0.1:8080)")
    api.add_argument("--token", help="bearer token clients must send (default: NOTIFYQ_API_TOKEN)")
    api.add_argument(
        "--queues", default="default", help="queues whose lease long-polls are woken by LISTEN (comma list)"
    )
    add_connection_options(api)
    api.set_defaults(run=run_api)


async def run_api(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415 - the api extra is optional; only this command needs it

    from notifyq.api import create_app  # noqa: PLC0415 - see above

    host, port = parse_bind(args.bind)
    token = args.token or os.environ.get("NOTIFYQ_API_TOKEN") or None
    if token is None and not is_loopback(host):
        raise ConfigError("token", f"binding {host} (not loopback) requires --token or NOTIFYQ_API_TOKEN")
    app = create_app(settings_from(args), token=token, listen_queues=split_queues(args.queues))
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    await uvicorn.Server(config).serve()
    return 0
