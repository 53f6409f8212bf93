"""The `ordergraph` command line: serve, migrate, seed, rebuild-projections, token, schema."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from gql.database import database_url, default_data_dir
from gql.errors import ConfigurationError, DatabaseUnavailable, DomainError
from gql.identity import ROLES, SCOPES

T = TypeVar("T")
err = Console(stderr=True, highlight=False)
out = Console(highlight=False)

database_option = click.option(
    "--database-url", envvar="DATABASE_URL", default=None, metavar="URL",
    help="PostgreSQL to use [env DATABASE_URL]; default: an embedded PostgreSQL in "
         "ORDERGRAPH_DATA_DIR.",
)


def _with_database(url: str | None, job: Callable[[str], Awaitable[T]]) -> T:
    """Run `job` against the database, starting (and stopping) the embedded one if needed."""
    with database_url(url, default_data_dir()) as resolved:
        return asyncio.run(job(resolved))


async def _pool(url: str, **kwargs: Any) -> Any:
    from gql.store.connection import create_pool, migrate

    pool = await create_pool(url, **kwargs)
    async with pool.acquire() as conn:
        await migrate(conn)
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
              help="Seed demo data once if the database is empty [env ORDERGRAPH_DEMO].")
@click.option("--workers", envvar="ORDERGRAPH_WORKERS", default=1, show_default=True,
              type=click.IntRange(1, 64), help="Worker processes [env ORDERGRAPH_WORKERS].")
@click.option("--trust-dev-key", is_flag=True, envvar="ORDERGRAPH_TRUST_DEV_KEY",
              help="Accept tokens minted by `ordergraph token` [env ORDERGRAPH_TRUST_DEV_KEY].")
@click.option("--insecure-open", is_flag=True, envvar="ORDERGRAPH_INSECURE_OPEN",
              help="Without keys, serve everyone as admin also beyond loopback "
                   "[env ORDERGRAPH_INSECURE_OPEN].")
def serve(host: str, port: int, database_url: str | None, demo: bool, workers: int,
          trust_dev_key: bool, insecure_open: bool) -> None:
    """Apply schema.sql, then serve GraphQL over HTTP and WebSocket."""
    from gql.server import serve as run_server

    if trust_dev_key:
        os.environ["ORDERGRAPH_TRUST_DEV_KEY"] = "1"
    if insecure_open:
        os.environ["ORDERGRAPH_INSECURE_OPEN"] = "1"
    run_server(host=host, port=port, database_url=database_url, demo=demo, workers=workers)


@cli.command()
@database_option
def migrate(database_url: str | None) -> None:
    """Apply schema.sql (idempotent: running it twice changes nothing)."""

    async def job(url: str) -> None:
        pool = await _pool(url, min_size=1, max_size=1)
        await pool.close()

    _with_database(database_url, job)
    out.print("schema applied")


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

    async def job(url: str) -> Any:
        pool = await _pool(url, min_size=8, max_size=8)
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

    async def job(url: str) -> Any:
        pool = await _pool(url, min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn:
                return await rebuild(conn)
        finally:
            await pool.close()

    result = _with_database(database_url, job)
    out.print(f"rebuilt {result.orders} orders from {result.events} events in "
              f"{result.seconds:.2f} s ({result.changed_rows} rows differed from the live read model)")


_TTL = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    """Seconds of a duration such as 90s, 15m, 8h or 1d."""
    unit = text[-1:].lower()
    number = text[:-1] if unit in _TTL else text
    if not number.isdigit() or int(number) == 0:
        raise click.BadParameter(f"{text!r} is not a duration such as 15m, 8h or 90s",
                                 param_hint="--ttl")
    return int(number) * _TTL.get(unit, 1)


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
def schema() -> None:
    """Print the GraphQL SDL."""
    from gql.schema import sdl

    click.echo(sdl())


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
        _fail(str(exc))
    except Exception as exc:  # last resort: still one line, never a traceback
        _fail(f"unexpected {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main(sys.argv[1:])

