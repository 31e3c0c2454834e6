"""Command-line entry points: `notifyq` (admin) and `notifyq-worker`.

Each command group lives in its own module exposing `register(subparsers)`; main.py only collects
them. Commands print tables for people and JSON with `--json` for scripts; errors go to stderr with
exit status 1 (2 for usage errors), never a traceback for a NotifyqError.
"""
