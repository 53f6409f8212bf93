"""GraphQL over HTTP as its spec's own audit sees it: npm graphql-http's `auditServer` against
a live server, pinned in tests/audit/package-lock.json. Any warning or error fails; notices
(optional behaviour, e.g. batching) are listed in the failure message only."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import serving

AUDIT = Path(__file__).resolve().parent / "audit"


def _installed() -> None:
    """graphql-http from the lock file, into tests/audit/node_modules (git-ignored), once."""
    if shutil.which("npm") is None:
        pytest.fail("npm is needed for the GraphQL-over-HTTP audit (install Node.js 20+)")
    marker = AUDIT / "node_modules" / ".package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= (AUDIT / "package-lock.json").stat().st_mtime:
        return
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(AUDIT)],
                   check=True, capture_output=True, timeout=300)


async def test_the_graphql_over_http_audit_passes_without_a_warning(database_url: str) -> None:
    await asyncio.to_thread(_installed)
    async with serving(database_url) as server:
        node = await asyncio.create_subprocess_exec(
            "node", str(AUDIT / "audit.mjs"), server.url + "/graphql",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(node.communicate(), 120)
    assert node.returncode == 0, err.decode()
    results = [json.loads(line) for line in out.decode().splitlines()]
    counts = {status: sum(r["status"] == status for r in results)
              for status in ("ok", "notice", "warn", "error")}
    failing = [r for r in results if r["status"] in ("warn", "error")]
    assert failing == [], (counts, failing)
    assert counts["ok"] >= 57, counts
