"""Uploads SIZE bytes through TelegramClient and reports what it cost this process in memory.

    python upload_probe.py URL TOKEN SIZE

prints one JSON line: the outcome, the resident memory just before the upload (the file's
bytes already in it) and the peak resident memory during it, both from /proc/self/status.
Run in a process of its own, so that nothing else moves its figures.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path

from coursedesk.telegram.client import TelegramClient, Upload

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _kib(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


def _restart_peak() -> bool:
    """Make VmHWM the current VmRSS (Linux 4.0+); False where that is not allowed."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


async def _probe(base_url: str, token: str, size: int) -> dict[str, object]:
    async with TelegramClient(token, base_url, pool_size=2, timeout=60) as client:
        # Everything a first upload sets up (connection, buffers, code) is paid here.
        await client.send_document(1, Upload(os.urandom(2**20), "warm-up.bin"))
        content = os.urandom(size)
        peak_restarted = _restart_peak()
        before = _kib("VmRSS")
        peak_before = _kib("VmHWM")
        result = await client.send_document(1, Upload(content, "big.bin"))
        peak = _kib("VmHWM")
    return {
        "result": repr(result),
        "rss_before_kib": before,
        "peak_before_kib": peak_before,
        "peak_kib": peak,
        "peak_restarted": peak_restarted,
        "sha256": hashlib.sha256(content).hexdigest(),
    }


if __name__ == "__main__":
    url, token, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.stdout.write(json.dumps(asyncio.run(_probe(url, token, size))) + "\n")
