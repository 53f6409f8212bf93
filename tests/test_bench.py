"""The benches that CI runs in their smoke mode (tiny data, short phases), so they cannot rot."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from tests.test_cli import ROOT

pytestmark = pytest.mark.bench


async def test_the_operating_bench_runs_in_its_smoke_mode(server_url: str) -> None:
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bench.operating", "--smoke"], cwd=ROOT,
        capture_output=True, text=True, timeout=180, env={**os.environ, "DATABASE_URL": server_url})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| 1 |" in result.stdout and "idle sockets at once" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
