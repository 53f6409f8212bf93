"""Where our server spends its time on a workload: py-spy samples of `ordergraph serve` under wrk.

    python -m bench.profile [--workloads Q1,Q2] [--seconds 15] [--orders 20000] [--native]
    python -m bench.profile --summarize bench/out/profile-Q1.txt     # re-read a saved profile
    python -m bench.profile --smoke       # 200 orders, 1 s per workload: checks, measures nothing

Loads the same data as bench/compare.py, starts ours pinned to one core, drives it with wrk
from the other (same bodies, same concurrency) and samples it with py-spy (installed with pip
into bench/.peers/pyspy the first time). Each sample is charged to the innermost frame that
belongs to a known layer (HTTP, GraphQL parse/validate/execute, strawberry, DataLoader,
asyncpg, orjson, our code, the garbage collector with --native, …), so the shares add to 100%.
The collapsed stacks are kept next to the summary for flame graphs. `--smoke` profiles Q1 and
Q2 for 1 s each after a 1 s warm-up on 200 orders, on a free port, and fails when py-spy took no
sample or a request failed: it shows that the bench works, its figures measure nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench import auth, compare, data, peers
from bench.common import SMOKE, free_ports, fresh_database, postgres

PYSPY = peers.PEERS / "pyspy" / "bin" / "py-spy"

# (layer, substrings of a frame) — checked from the innermost frame outwards, first match wins
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("garbage collector", ("gc_collect", "(gc)")),
    ("orjson", ("orjson",)),
    ("asyncpg (protocol, decode, pool)", ("asyncpg", "pgproto", "recordobj")),
    ("strawberry DataLoader", ("strawberry/dataloader",)),
    ("graphql-core validate", ("graphql/validation/", "graphql/utilities/", "graphql/language/visitor")),
    ("graphql-core parse", ("graphql/language/",)),
    ("graphql-core execute (per-field)", ("graphql/execution/", "graphql/pyutils/", "graphql/type/")),
    ("strawberry (schema, extensions, field wrappers)", ("strawberry/",)),
    ("ordergraph HTTP handler (gql/http/graphql.py)", ("gql/http/graphql.py",)),
    ("ordergraph resolvers and types (gql/)", ("gql/",)),
    ("starlette", ("starlette/",)),
    ("uvicorn + httptools (HTTP parsing, ASGI)", ("uvicorn/", "httptools")),
    ("uvloop / asyncio (event loop, sockets)", ("uvloop", "asyncio/", "epoll", "libc.so")),
    ("CPython stdlib (uuid, datetime, decimal, base64, enum …)", (
        "uuid.py", "datetime", "decimal", "base64", "enum.py", "json/", "typing.py", "dataclasses.py",
        "functools.py", "inspect.py", "copy.py", "re/", "contextlib.py", "abc.py")),
]


def layer_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for layer, needles in LAYERS:
            if any(needle in frame for needle in needles):
                return layer
    return "other"


def summarize(path: Path, top: int = 12) -> str:
    """A markdown summary of a py-spy raw (collapsed) profile."""
    layers: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n, frames = int(count), stack.split(";")
        total += n
        layers[layer_of(frames)] += n
        leaves[frames[-1]] += n
        for layer in {layer_of(frames[: i + 1]) for i in range(len(frames))}:
            inclusive[layer] += n
    if not total:
        return f"{path}: no samples"
    out = [f"{path.name}: {total} samples", "",
           "| layer | self % | inclusive % |", "|---|---:|---:|"]
    for layer, n in layers.most_common():
        out.append(f"| {layer} | {100 * n / total:.1f} | {100 * inclusive[layer] / total:.1f} |")
    out += ["", "| innermost frame | self % |", "|---|---:|"]
    out += [f"| `{frame}` | {100 * n / total:.1f} |" for frame, n in leaves.most_common(top)]
    return "\n".join(out)


def ensure_pyspy() -> None:
    if PYSPY.exists():
        return
    print("installing py-spy into bench/.peers/pyspy (pip) …", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(PYSPY.parents[1]),
                    "py-spy"], check=True)


def profile(args: argparse.Namespace, url: str, work: Path) -> None:
    out = Path(args.out)
    server = peers.ours(url, args.port, args.pool, args.server_cpu, work / "ours-profile.log")
    server.start()
    try:
        for workload in args.workloads:
            bodies = work / f"ours-{workload}.txt"
            compare.wrk(server.url, bodies, concurrency=args.concurrency, seconds=args.warmup,
                        cpu=args.loadgen_cpu)
            target = out / f"profile-{workload}.txt"
            target.unlink(missing_ok=True)
            # --native samples C frames (it has to pause the process); else sample without pausing
            with (work / "py-spy.log").open("a") as log:
                spy = subprocess.Popen(
                    [str(PYSPY), "record", "--pid", str(server.pid), "--duration",
                     str(int(args.seconds)), "--rate", "250", "--format", "raw", "--output", str(target),
                     *(["--native"] if args.native else ["--nonblocking"])],
                    stdout=log, stderr=log)
            result = compare.wrk(server.url, bodies, concurrency=args.concurrency,
                                 seconds=args.seconds + 1, cpu=args.loadgen_cpu)
            spy.wait(60)
            if not target.exists():
                raise RuntimeError(f"py-spy wrote no profile; see {work / 'py-spy.log'}")
            print(f"\n## {workload}: {result['rps']:,.0f} req/s under the profiler, "
                  f"p50 {result['p50_ms']:.1f} ms, bad {result['bad']}\n")
            summary = summarize(target)
            print(summary, flush=True)
            if summary.endswith(": no samples") or (args.smoke and result["bad"]):
                raise SystemExit(f"{workload}: no samples, or {result['bad']} failed requests")
    finally:
        server.stop()


async def _main(server: str, args: argparse.Namespace, work: Path) -> None:
    dataset = data.generate(args.orders, args.seed)
    async with fresh_database(server) as url:
        await data.load(url, dataset)
        orders, customers, owners = await compare._ids(url)
        compare.write_inputs(work, orders, customers, owners, auth.Issuer(work))
        await asyncio.to_thread(profile, args, url, work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default="Q1,Q2")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--warmup", type=float, help="seconds of load before sampling (default 3)")
    parser.add_argument("--orders", type=int)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--port", type=int, help="default 8840, a free one with --smoke")
    parser.add_argument("--native", action="store_true", help="sample C frames too (GC, decoders)")
    parser.add_argument("--out", help="default bench/out, bench/out/smoke with --smoke")
    parser.add_argument("--smoke", action="store_true",
                        help="200 orders, 1 s per workload: checks, measures nothing")
    parser.add_argument("--summarize", type=Path, help="only summarize a saved profile")
    args = parser.parse_args()
    if args.summarize:
        print(summarize(args.summarize))
        return
    args.workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    smoke = args.smoke
    args.seconds = args.seconds or (1.0 if smoke else 15.0)
    args.warmup = args.warmup or (1.0 if smoke else 3.0)
    args.orders = args.orders or (200 if smoke else 20_000)
    args.port = args.port or (free_ports(1)[0] if smoke else 8840)
    args.out = args.out or str(compare.BENCH / "out" / ("smoke" if smoke else ""))
    if smoke:
        print(f"# {SMOKE}", flush=True)
    args.server_cpu, args.loadgen_cpu = compare.parse([]).server_cpu, compare.parse([]).loadgen_cpu
    compare.ensure_wrk()
    ensure_pyspy()
    work = Path(args.out) / "work"
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with postgres() as server:
        asyncio.run(_main(server, args, work))
    print(f"\n{time.perf_counter() - started:.0f}s in all; stacks in {args.out}/profile-*.txt")


if __name__ == "__main__":
    main()
