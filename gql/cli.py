"""The `ordergraph` command line: serve, migrate, seed, rebuild-projections, export, import,
token, schema."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from gql.database import database_url, default_data_dir
from gql.errors import ConfigurationError, DatabaseUnavailable, DomainError
from gql.identity import ROLES, SCOPES
from gql.store.connection import target

T = TypeVar("T")
err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)  # result lines stay one line for scripts

database_option = click.option(
    "--database-url", envvar="DATABASE_URL", default=None, metavar="URL",
    help="PostgreSQL to use [env DATABASE_URL]; default: an embedded PostgreSQL in "
         "ORDERGRAPH_DATA_DIR.",
)


def _with_database(url: str | None, job: Callable[[str, bool], Awaitable[T]]) -> T:
    """Run `job(url, embedded)` against the database, starting (and stopping) the embedded one
    if needed."""
    if url:
        target(url)  # one clear line for a URL that names no database
    with database_url(url, default_data_dir()) as resolved:
        return asyncio.run(job(resolved, url is None))


async def _pool(url: str, upgrade: bool, **kwargs: Any) -> Any:
    """A pool on a database at this release's schema (created when empty; the embedded one,
    `upgrade`, is also upgraded; another that is behind is refused)."""
    from gql.store.connection import create_pool
    from gql.store.migrations import prepare

    pool = await create_pool(url, **kwargs)
    try:
        async with pool.acquire() as conn:
            await prepare(conn, upgrade=upgrade)
    except BaseException:
        await pool.close()
        raise
    return pool


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ordergraph")
def cli() -> None:
    """ordergraph: a GraphQL API over PostgreSQL event streams for orders."""


@cli.command()
@click.option("--host", envvar="ORDERGRAPH_HOST", default="127.0.0.1", show_default=True,
              help="Address to listen on [env ORDERGRAPH_HOST].")
@click.option("--port", envvar="ORDERGRAPH_PORT", default=8000, show_default=True,
              type=click.IntRange(0, 65535), help="Port [env ORDERGRAPH_PORT].")
@database_option
@click.option("--demo/--no-demo", envvar="ORDERGRAPH_DEMO", default=False,
              help="Seed demo data once if the database is empty, and keep a simulated shop "
                   "running [env ORDERGRAPH_DEMO].")
@click.option("--demo-rate", envvar="ORDERGRAPH_DEMO_RATE", default=1.0, show_default=True,
              type=click.FloatRange(0, 100),
              help="New orders a second the demo shop places; 0 seeds only "
                   "[env ORDERGRAPH_DEMO_RATE].")
@click.option("--workers", envvar="ORDERGRAPH_WORKERS", default=1, show_default=True,
              type=click.IntRange(1, 64), help="Worker processes [env ORDERGRAPH_WORKERS].")
@click.option("--trust-dev-key", is_flag=True, envvar="ORDERGRAPH_TRUST_DEV_KEY",
              help="Accept tokens minted by `ordergraph token` [env ORDERGRAPH_TRUST_DEV_KEY].")
@click.option("--insecure-open", is_flag=True, envvar="ORDERGRAPH_INSECURE_OPEN",
              help="Without keys, serve everyone as admin also beyond loopback "
                   "[env ORDERGRAPH_INSECURE_OPEN].")
@click.option("--replica-url", "replica_urls", multiple=True, metavar="URL",
              envvar="ORDERGRAPH_REPLICA_URLS",
              help="A streaming replica of the database that answers reads; repeatable "
                   "[env ORDERGRAPH_REPLICA_URLS, separated by spaces].")
def serve(host: str, port: int, database_url: str | None, demo: bool, demo_rate: float,
          workers: int, trust_dev_key: bool, insecure_open: bool,
          replica_urls: tuple[str, ...]) -> None:
    """Apply schema.sql, then serve GraphQL over HTTP and WebSocket."""
    from gql.serve import serve as run_server

    os.environ["ORDERGRAPH_REPLICA_URLS"] = " ".join(replica_urls)
    os.environ["ORDERGRAPH_DEMO_RATE"] = str(demo_rate if demo else 0)
    if trust_dev_key:
        os.environ["ORDERGRAPH_TRUST_DEV_KEY"] = "1"
    if insecure_open:
        os.environ["ORDERGRAPH_INSECURE_OPEN"] = "1"
    run_server(host=host, port=port, database_url=database_url, demo=demo, workers=workers)


@cli.command()
@database_option
def migrate(database_url: str | None) -> None:
    """Bring the database to this release's schema (running it twice changes nothing)."""
    from gql.store.connection import connect, describe_target
    from gql.store.migrations import Migrated
    from gql.store.migrations import migrate as run_migrate

    async def job(url: str, embedded: bool) -> tuple[str, Migrated]:
        where = describe_target(url)
        try:
            conn = await connect(url)
            try:
                return where, await run_migrate(conn)
            finally:
                await conn.close()
        except (DatabaseUnavailable, ConfigurationError) as exc:  # say where, whatever failed
            raise type(exc)(f"{where}: {exc}") from None

    where, result = _with_database(database_url, job)
    if result.created:
        out.print(f"created the schema in {where} (migration {result.current:04d})")
    elif result.applied:
        out.print(f"applied {', '.join(m.label for m in result.applied)} to {where} "
                  f"(now at migration {result.current:04d})")
    elif result.redefined:
        out.print(f"applied this release's functions and rules to {where} "
                  f"(migration {result.current:04d})")
    else:
        out.print(f"{where} is already up to date (migration {result.current:04d})")
    if result.refolded is not None:
        out.print(f"the fold changed: folded {result.refolded} orders again from the log")


@cli.command()
@click.option("--orders", required=True, type=click.IntRange(1, 10_000_000),
              help="How many orders to create.")
@click.option("--customers", type=click.IntRange(1, 10_000_000), default=None,
              help="How many customers (default: orders / 5).")
@click.option("--seed", "seed_value", type=int, default=1, show_default=True,
              help="Random seed: the same seed gives the same data.")
@database_option
def seed(orders: int, customers: int | None, seed_value: int, database_url: str | None) -> None:
    """Write deterministic, realistic demo data through the append path."""
    from gql.seed import seed as run_seed

    async def job(url: str, embedded: bool) -> Any:
        pool = await _pool(url, embedded, min_size=8, max_size=8)
        try:
            with Progress(TextColumn("seeding"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("orders"), TimeRemainingColumn(), console=err) as bar:
                task = bar.add_task("orders", total=orders)
                return await run_seed(pool, orders=orders, customers=customers, seed=seed_value,
                                      progress=lambda n: bar.advance(task, n))
        finally:
            await pool.close()

    result = _with_database(database_url, job)
    out.print(f"seeded {result.customers} customers, {result.orders} orders, "
              f"{result.events} events")


@cli.command("rebuild-projections")
@database_option
def rebuild_projections(database_url: str | None) -> None:
    """Replay every event into fresh read models and swap them in."""
    from gql.store.projections import rebuild_projections as rebuild

    async def job(url: str, embedded: bool) -> Any:
        pool = await _pool(url, embedded, min_size=1, max_size=1, command_timeout=None)
        try:
            with _rate_progress("rebuilding") as report:
                async with pool.acquire() as conn:
                    return await rebuild(conn, progress=report)
        finally:
            await pool.close()

    result = _with_database(database_url, job)
    out.print(f"rebuilt {result.orders} orders from {result.events} events in "
              f"{result.seconds:.2f} s ({result.events / max(result.seconds, 1e-9):,.0f} events/s; "
              f"{result.changed_rows} rows differed from the live read model)")


@cli.command("forget-customers")
@click.argument("customer_ids", nargs=-1, required=True, metavar="CUSTOMER_ID…")
@database_option
def forget_customers(customer_ids: tuple[str, ...], database_url: str | None) -> None:
    """Forget customers: destroy their keys (e.g. again after restoring a backup)."""
    import uuid

    from gql.errors import CustomerAlreadyForgotten, CustomerNotFound
    from gql.identity import SYSTEM
    from gql.store.customers import forget_customer

    try:
        ids = [uuid.UUID(text) for text in customer_ids]
    except ValueError:
        _fail("every CUSTOMER_ID must be a UUID", 2)

    async def job(url: str, embedded: bool) -> list[str]:
        pool = await _pool(url, embedded, min_size=1, max_size=1)
        unknown = []
        try:
            for customer_id in ids:
                try:
                    await forget_customer(pool, customer_id, SYSTEM.claims())
                    out.print(f"forgot {customer_id}")
                except CustomerAlreadyForgotten:
                    out.print(f"{customer_id} was forgotten already")
                except CustomerNotFound:
                    unknown.append(str(customer_id))
        finally:
            await pool.close()
        return unknown

    unknown = _with_database(database_url, job)
    if unknown:
        _fail(f"no such customer: {', '.join(unknown)}")


@cli.command("export")
@click.option("--after", default=None, metavar="POSITION",
              help="Start after this globalPosition (the last one a previous export wrote).")
@click.option("--types", default=None, metavar="TYPE,…",
              help="Only these event types, comma-separated (e.g. ORDER_PLACED,ORDER_SHIPPED).")
@click.option("--output", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              show_default=True, help="File to write (- for standard output).")
@database_option
def export(after: str | None, types: str | None, output: str, database_url: str | None) -> None:
    """Write the log as NDJSON in log order, one event per line (resumable with --after)."""
    from gql.events import ORIGIN, EventType, Position
    from gql.transfer import export_to, output_file

    try:
        start = Position.decode(after, "after") if after else ORIGIN
    except DomainError as exc:
        raise click.BadParameter(exc.message, param_hint="--after") from None
    try:
        names = [EventType[t.strip()].value for t in types.split(",")] if types else None
    except KeyError as exc:
        raise click.BadParameter(f"unknown event type {exc.args[0]}", param_hint="--types") from None

    with output_file(output) as sink:
        async def job(url: str, embedded: bool) -> int:
            pool = await _pool(url, embedded, min_size=1, max_size=1, command_timeout=None)
            try:
                async with pool.acquire() as conn:
                    return await export_to(conn, sink, after=start, types=names)
            finally:
                await pool.close()

        count = _with_database(database_url, job)
    err.print(f"exported {count} events")


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=False))
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="Events per transaction.")
@database_option
def import_(file: str, batch_size: int, database_url: str | None) -> None:
    """Load NDJSON events through the same rules as every append (idempotent by event id)."""
    from gql.transfer import import_lines, read_lines

    with open(file, "rb") as source, _import_progress(os.path.getsize(file)) as (read, sent):
        async def job(url: str, embedded: bool) -> Any:
            pool = await _pool(url, embedded, min_size=1, max_size=1, command_timeout=None)
            try:
                async with pool.acquire() as conn:
                    return await import_lines(conn, read_lines(source), batch_size=batch_size,
                                              progress=read, appended=sent)
            finally:
                await pool.close()

        result = _with_database(database_url, job)
    # one line each, never wrapped: scripts grep them
    for refused in result.refused[:_SHOWN_REFUSALS]:
        click.echo(f"line {refused.line}: {refused.code}: {_one_line(refused.message)}", err=True)
    if len(result.refused) > _SHOWN_REFUSALS:
        click.echo(f"… and {len(result.refused) - _SHOWN_REFUSALS} more refused lines", err=True)
    out.print(f"appended {result.appended}, deduplicated {result.deduplicated}, "
              f"refused {len(result.refused)}")
    if result.refused:
        sys.exit(1)


_SHOWN_REFUSALS = 50


def _one_line(message: str) -> str:
    return " ".join(message.split())


@contextlib.contextmanager
def _rate_progress(what: str) -> Iterator[Callable[[int, int], None]]:
    """A bar over events done of a total, with their rate."""
    started = time.perf_counter()
    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TextColumn("events"),
                  TextColumn("{task.fields[rate]:,.0f}/s"), TimeRemainingColumn(), console=err) as bar:
        task = bar.add_task(what, total=None, rate=0.0)

        def report(done: int, total: int) -> None:
            rate = done / max(time.perf_counter() - started, 1e-9)
            bar.update(task, completed=done, total=total, rate=rate)

        yield report


@contextlib.contextmanager
def _import_progress(size: int) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """A bar over the file's bytes, with the events sent and their rate."""
    started = time.perf_counter()
    with Progress(TextColumn("importing"), BarColumn(), TaskProgressColumn(),
                  TextColumn("{task.fields[events]:,} events, {task.fields[rate]:,.0f}/s"),
                  TimeRemainingColumn(), console=err) as bar:
        task = bar.add_task("import", total=size, events=0, rate=0.0)
        seen = [0]

        def on_events(n: int) -> None:
            seen[0] += n
            rate = seen[0] / max(time.perf_counter() - started, 1e-9)
            bar.update(task, events=seen[0], rate=rate)

        yield (lambda n: bar.advance(task, n)), on_events


_TTL = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    """Seconds of a duration such as 90s, 15m, 8h or 1d, at most a year."""
    from gql.tokens import MAX_TTL

    unit = text[-1:].lower()
    number = text[:-1] if unit in _TTL else text
    if not (number.isascii() and number.isdigit()) or int(number) == 0:
        raise click.BadParameter(f"{text!r} is not a duration such as 15m, 8h or 90s",
                                 param_hint="--ttl")
    seconds = int(number) * _TTL.get(unit, 1)
    if seconds > MAX_TTL:
        raise click.BadParameter(f"{text!r} is longer than a year ({MAX_TTL // 86_400}d); "
                                 "development tokens are meant to expire", param_hint="--ttl")
    return seconds


@cli.command()
@click.option("--role", required=True, type=click.Choice(ROLES), help="The token's role.")
@click.option("--customer", "customer_id", type=click.UUID, default=None,
              help="The customer a customer token acts as.")
@click.option("--scope", type=click.Choice(SCOPES), default=None,
              help="A service token's scope.")
@click.option("--subject", default=None, help="The `sub` claim (default: the customer or role).")
@click.option("--ttl", default="15m", show_default=True, help="How long it is valid (90s, 15m, 8h).")
def token(role: str, customer_id: Any, scope: str | None, subject: str | None, ttl: str) -> None:
    """Mint a development token, signed with the key in the data directory (trusted by
    `serve --trust-dev-key`)."""
    from gql.tokens import dev_private_key, identity_from_claims, mint

    claims: dict[str, Any] = {"role": role, "sub": subject or str(customer_id or role)}
    if customer_id is not None:
        claims["customer_id"] = str(customer_id)
    if scope is not None:
        claims["scope"] = scope
    seconds = parse_ttl(ttl)
    identity_from_claims({**claims, "exp": 0})  # one clear line when the claims do not fit
    click.echo(mint(dev_private_key(default_data_dir()), claims, seconds))


@cli.command()
@click.option("--sql", is_flag=True,
              help="Print the database schema instead: schema.sql with the declarations' SQL.")
@click.option("--events", is_flag=True, help="Print the declared event types as a Markdown table.")
def schema(sql: bool, events: bool) -> None:
    """Print the GraphQL SDL (or, with --sql, the database schema)."""
    if events:
        from gql.catalogue import CATALOGUE

        click.echo(CATALOGUE.table(), nl=False)
        return
    if sql:
        from gql.store.migrations import schema as database_schema

        click.echo(database_schema(), nl=False)
        return
    from gql.schema import sdl

    click.echo(sdl())


@cli.command()
@click.option("--servers", default=2, show_default=True, type=click.IntRange(1, 16),
              help="ordergraph servers behind HAProxy.")
@click.option("--replica/--no-replica", default=True, show_default=True,
              help="A streaming replica that answers the servers' reads.")
def fleet(servers: int, replica: bool) -> None:
    """Start a fleet on loopback: a primary, a streaming replica, servers, HAProxy; Ctrl-C
    stops it all."""
    from gql.fleet import fleet as start_fleet

    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background
    with start_fleet(servers=servers, replica=replica, log=err.print) as running:
        out.print(f"ordergraph fleet in {running.directory}\n"
                  f"  GraphQL (HAProxy)   {running.url}/graphql\n"
                  f"  subscriptions       ws://{running.url.removeprefix('http://')}/graphql")
        for name in running.server_ports:
            out.print(f"  server {name}            {running.server_url(name)}")
        out.print(f"  primary             {running.primary_url}")
        if replica:
            out.print(f"  replica             {running.replica_url}")
        out.print("Ctrl-C stops everything")
        try:
            while all(p.poll() is None for p in running.processes.values()):
                time.sleep(0.5)
        except KeyboardInterrupt:  # the way to stop it: not an error
            err.print("stopping the fleet…")
            return
        gone = [name for name, p in running.processes.items() if p.poll() is not None]
        raise click.ClickException(f"{', '.join(gone)} exited; stopping the fleet "
                                   f"(logs in {running.directory})")


@cli.group()
def documents() -> None:
    """Trusted documents: the GraphQL documents your apps ship, known by their sha256."""


@documents.command("check")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def documents_check(directory: Path) -> None:
    """Check every .graphql document under DIRECTORY against the schema and this server's
    limits (ORDERGRAPH_MAX_DEPTH, …_COST, …): one line per problem, exit 1 if any."""
    from gql.config import settings_from_env
    from gql.schema import build_schema
    from gql.schema.documents import check_directory

    found, problems = check_directory(build_schema(settings_from_env("")), directory)
    for document in found:
        costs = ", ".join(f"{name or '(only operation)'} costs {cost}"
                          for name, cost in document.costs.items() if name or len(document.costs) == 1)
        out.print(f"{document.id}  {document.path}  {costs}", markup=False)
    for problem in problems:
        out.print(str(problem), markup=False)
    if problems:
        _fail(f"{len(problems)} problem(s) in {directory}; {len(found)} document(s) valid")
    out.print(f"{len(found)} document(s) valid against the schema", markup=False)


from gql.outbound.commands import consumers, relay  # noqa: E402 (streaming out)

cli.add_command(relay)
cli.add_command(consumers)


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"ordergraph: error: {message}", soft_wrap=True, markup=False)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one clear line and a non-zero exit on failure, never a traceback."""

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # runs the cleanup that stops the embedded database

    signal.signal(signal.SIGTERM, terminate)
    try:
        cli.main(args=argv, prog_name="ordergraph", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else "", err=True)
        sys.exit(2)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _fail(f"{exc.format_message()}{hint}", 2)
    except click.Abort:
        _fail("aborted", 130)
    except click.ClickException as exc:
        _fail(exc.format_message())
    except (DatabaseUnavailable, ConfigurationError) as exc:
        _fail(str(exc))
    except DomainError as exc:
        _fail(exc.message)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except OSError as exc:
        _fail(str(exc) or type(exc).__name__)
    except Exception as exc:  # last resort: still one line, never a traceback
        _fail(f"unexpected {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main(sys.argv[1:])

