"""The dashboard in a real headless Chromium: it renders queues, workers and failed jobs, and the
retry button puts a failed job back in the queue.

Needs Debian's chromium (`apt-get install chromium`) and Playwright for Python (`pip install
playwright`; never `playwright install`: the system browser is used). Skipped when either is missing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api_process import api_process

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "dash-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = pytest.mark.e2e


@pytest.fixture
def api(database_url: str) -> Iterator[str]:
    with api_process(database_url, TOKEN) as base:
        yield base


def _failed_and_queued_jobs(base: str) -> tuple[int, int]:
    job_id: int = httpx.post(
        f"{base}/v1/jobs", json={"task": "mail.send", "max_attempts": 1}, headers=AUTH
    ).json()["id"]
    queued: int = httpx.post(f"{base}/v1/jobs", json={"task": "report.build"}, headers=AUTH).json()["id"]
    token = httpx.post(f"{base}/v1/lease", json={"queues": ["default"]}, headers=AUTH).json()["jobs"][0][
        "token"
    ]
    body = {"token": token, "reason": "SMTPError: 550 mailbox unavailable"}
    assert httpx.post(f"{base}/v1/jobs/{job_id}/fail", json=body, headers=AUTH).status_code == 200
    return job_id, queued


def test_dashboard_retry_requeues_a_failed_job_and_cancel_cancels_a_queued_one(api: str) -> None:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    job_id, queued = _failed_and_queued_jobs(api)
    shots = Path(tempfile.mkdtemp(prefix="notifyq-dashboard-"))
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(f"{api}/dashboard?token={TOKEN}")
            page.wait_for_selector(f"button.retry[data-job-id='{job_id}']", timeout=15_000)
            assert "550 mailbox unavailable" in page.inner_text("#failed")
            assert "default" in page.inner_text("#queues")
            page.screenshot(path=str(shots / "dashboard.png"), full_page=True)
            page.click(f"button.retry[data-job-id='{job_id}']")
            page.wait_for_selector(f"button.retry[data-job-id='{job_id}']", state="detached", timeout=15_000)
            page.click(f"button.cancel[data-job-id='{queued}']")
            page.wait_for_selector(f"button.cancel[data-job-id='{queued}']", state="detached", timeout=15_000)
            browser.close()
        assert (shots / "dashboard.png").stat().st_size > 1000
        job = httpx.get(f"{api}/v1/jobs/{job_id}", headers=AUTH).json()
        assert job["status"] == "queued"
        cancelled = httpx.get(f"{api}/v1/jobs/{queued}", headers=AUTH).json()
        assert cancelled["status"] == "cancelled"
    finally:
        if not os.environ.get("NOTIFYQ_KEEP_SCREENSHOTS"):
            shutil.rmtree(shots, ignore_errors=True)
        else:
            print(f"screenshot kept in {shots}")
