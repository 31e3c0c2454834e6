"""A module with a periodic task, for `notifyq cron` to list."""

from __future__ import annotations

import notifyq


@notifyq.periodic("@daily", timezone="Europe/Paris", catch_up="none")
async def nightly() -> None:
    """Runs at local midnight in Paris."""
