"""Every bench runs in its smoke mode: tiny data, short cells, one round, every contender and check.

The smoke runs measure nothing; they keep the benches from rotting. Each runs as its own process,
as a person runs it, on its own embedded PostgreSQL, and must exit 0 and print its table.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import SMOKE

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[1]


def smoke(module: str, *args: str, timeout: float = 300) -> str:
    """`python -m bench.<module> --smoke …`'s output; fails unless it exits 0 saying it is a smoke run."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # an embedded server each
    try:
        done = subprocess.run([sys.executable, "-m", f"bench.{module}", *args, "--smoke"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"bench.{module} --smoke ran over {timeout:.0f}s:\n{exc.stdout}\n{exc.stderr}")
    output = f"{done.stdout}\n--- stderr ---\n{done.stderr}"
    assert done.returncode == 0, f"bench.{module} --smoke exited {done.returncode}:\n{output}"
    assert SMOKE in done.stdout, output
    return done.stdout


def table(output: str, header: str) -> list[list[str]]:
    """The rows of the markdown table whose header line starts with `header`, as cells."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(header)), None)
    assert start is not None, f"no table headed {header!r} in:\n{output}"
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    assert rows, f"the table headed {header!r} is empty:\n{output}"
    return rows


def test_bench_append_smoke() -> None:
    out = smoke("append")
    rows = table(out, "| workload | writers | ours/s | raw/s | minimal/s | ours/raw | raw/minimal |")
    assert [r[:2] for r in rows] == [["distinct streams", "1"], ["distinct streams", "2"],
                                     ["one hot stream", "1"], ["one hot stream", "2"]]
    assert all(len(r) == 7 for r in rows)
    cost = table(out, "| writers | doorbell | NOTIFY every append | without | doorbell/without ")
    assert [r[0] for r in cost] == ["1", "2"]
    assert all(len(r) == 7 for r in cost)


def test_bench_backfill_smoke() -> None:
    rows = table(smoke("backfill"), "| upgrade | what it does | seconds | events/s |")
    assert [r[0] for r in rows] == ["0003_event_status alone", "migrate from release 0.1"]
    assert "read model folded again (200 orders)" in rows[1][1]
    assert [r[-1] for r in rows] == ["0", "0"]  # no stream whose last status differs


def test_bench_compare_smoke(tmp_path: Path) -> None:
    """ours, ours+auth, PostGraphile, raw rows, raw json and bare HTTP on Q1-Q5; W1 without the floor."""
    out = smoke("compare", "--out", str(tmp_path), timeout=600)
    assert "same rows from every contender for Q1, Q2, Q3, Q4, Q5" in out
    rows = table(out, "| workload | contender | req/s | p50 ms | p99 ms | bad | ours / it |")
    reads = ("ours", "ours+auth", "PostGraphile", "raw rows", "raw json", "bare HTTP")
    writes = ("ours", "ours+auth", "PostGraphile", "raw")
    expected = ([[w, c] for w in ("Q1", "Q2", "Q3", "Q4", "Q5") for c in reads]
                + [["W1", c] for c in writes])
    assert [r[:2] for r in rows] == expected
    assert all(r[5] == "0" for r in rows), out  # no failed request in any cell
    ratios = table(out, "| workload | ours/raw limit | goal | ours/PostGraphile |")
    workloads = ["Q1", "Q2", "Q3", "Q4", "Q5", "W1"]
    assert [r[0] for r in ratios] == workloads
    assert "not judged (smoke)" in ratios[0][2] and "MISSED" not in out
    assert [r[0] for r in table(out, "| workload | ours+auth / ours |")] == workloads
    assert len(list(tmp_path.glob("compare-*.md"))) == 1 and len(list(tmp_path.glob("compare-*.json"))) == 1


def test_bench_data_smoke() -> None:
    rows = table(smoke("data"), "| orders | events | per order | seconds | events/s | orders by status |")
    assert rows[0][0] == "200" and "SHIPPED" in rows[0][5]


def test_bench_growth_smoke() -> None:
    """generate, `ordergraph import` and compare (rebuild included) on two tiny databases."""
    out = smoke("growth", timeout=450)
    assert "refused 0" in out
    rows = table(out, "| workload | small req/s | large req/s | large/small |")
    assert [r[0] for r in rows] == ["Q1", "Q3", "W1", "E1", "S1"] and all(len(r) == 7 for r in rows)
    assert out.count("0 rows differed from the live read model") == 2


def test_bench_hostile_smoke(tmp_path: Path) -> None:
    out = smoke("hostile", "--out", str(tmp_path))
    rows = table(out, "| round | Q1 alone req/s | p99 ms | Q1 attacked req/s |")
    assert len(rows) == 1 and rows[0][0] == "1" and len(rows[0]) == 9
    assert "QUERY_TOO_COMPLEX" in rows[0][7] and rows[0][8] == "0"
    assert "Server RSS:" in out


def test_bench_hostile_micro_smoke() -> None:
    rows = table(smoke("hostile", "--micro"), "| document | estimated cost | check per request |")
    assert [r[0] for r in rows] == ["Q1", "Q2", "10-alias attack"]


def test_bench_live_smoke() -> None:
    out = smoke("live")
    rows = table(out, "| subscribers | writers | appends/s | deliveries | lost | dup |")
    assert [(r[0], r[1]) for r in rows] == [("1", "paced"), ("1", "4 flat out"),
                                            ("100", "paced"), ("100", "4 flat out")]
    assert all(len(r) == 18 for r in rows)
    assert all(r[4] == "0" and r[5] == "0" for r in rows)  # nothing lost, nothing twice
    assert all(float(r[15]) > 0 for r in rows)  # each server's hub read the log
    throughput = table(out, "| subscribers | writers | live on | doorbell off, no subscribers |")
    assert [(r[0], r[1]) for r in throughput] == [("1", "2"), ("100", "2")]


def test_bench_profile_smoke(tmp_path: Path) -> None:
    out = smoke("profile", "--out", str(tmp_path))
    for workload in ("Q1", "Q2"):
        assert f"## {workload}: " in out and f"profile-{workload}.txt: " in out
        assert (tmp_path / f"profile-{workload}.txt").stat().st_size > 0
    layers = table(out, "| layer | self % | inclusive % |")
    assert sum(float(r[1]) for r in layers) == pytest.approx(100, abs=1)


def test_bench_transfer_smoke() -> None:
    rows = table(smoke("transfer"), "| step | seconds | events/s | outcome |")
    assert [r[0] for r in rows] == ["ordergraph export", "ordergraph import", "COPY into a bare table"]
    assert "refused 0; same log: True" in rows[1][3]


def test_bench_fleet_smoke() -> None:
    out = smoke("fleet")
    rows = table(out, "| setup | workload | round | req/s |")
    assert [r[:2] for r in rows] == [["1 server on the primary", "Q1"], ["2 servers on the replica", "Q1"],
                                     ["1 server on the primary", "Q3"], ["2 servers on the replica", "Q3"]]
    assert all(len(r) == 11 and r[6] == "0" for r in rows)  # no failed request
    assert all(float(r[10]) > 0 for r in rows if "replica" in r[0])  # the replica answered
    token = table(out, "| read after write | tries |")
    assert [r[0] for r in token] == ["without token", "with token"]
    assert token[1][7] == "0"  # with the token, never stale


def test_bench_traces_smoke() -> None:
    """Q1 and W1 before traces, with tracing off, and on at 100 % and 10 % (exported to a
    discarding endpoint)."""
    rows = table(smoke("traces"), "| workload | tracing | req/s | p50 ms | p99 ms | bad | ratio | goal |")
    assert [(r[0], r[1]) for r in rows] == [(w, t) for w in ("Q1", "W1")
                                            for t in ("before", "off", "on", "10 %")]
    assert all(r[5] == "0" for r in rows)  # nothing failed
    assert all("not judged (smoke)" in r[7] for r in rows if r[1] in ("off", "on"))
    assert all("of off" in r[6] for r in rows if r[1] == "10 %")


def test_bench_control_smoke() -> None:
    """Q1 as text and by trusted document id; rate limits off, in memory and in Redis."""
    output = smoke("control")
    rows = table(output, "| cell | req/s | p50 ms | p99 ms | bad | / its baseline | goal |")
    assert [r[0] for r in rows] == ["Q1 as text", "Q1 by document id", "Q1, rate limits off",
                                    "Q1, rate limits in memory", "Q1, rate limits in Redis",
                                    "Q1, a log line per request"]
    assert all(r[4] == "0" for r in rows)  # nothing failed, nothing refused
    assert all("not judged (smoke)" in r[6] for r in rows[3:5])
    # the Redis server charged far more requests than it made round trips (its leases)
    found = re.search(r"round trips .*: ([\d,]+) in all.* made ([\d,]+) requests", output)
    assert found is not None
    trips, requests = (int(n.replace(",", "")) for n in found.groups())
    assert trips >= 1 and trips * 50 < requests
