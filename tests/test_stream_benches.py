"""The streaming-out bench runs in its smoke mode: every part of it works, nothing is lost."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.outbound import NATS_URL

pytestmark = [pytest.mark.bench, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent


async def test_stream_bench_smoke(server_url: str, tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    bench = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.stream", "--smoke", "--no-pin", "--nats", NATS_URL,
        "--json", str(figures), cwd=ROOT, env={"DATABASE_URL": server_url, "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(bench.communicate(), 240)
    assert bench.returncode == 0, output.decode()
    found = json.loads(figures.read_text())
    assert found["relay_per_s"] > 0 and found["raw_per_s"] > 0
    assert found["relay_messages"] > 0 and found["ws_lost"] == 0
    assert found["sse_lost"] == 0 and found["ws_n_lost"] == 0
