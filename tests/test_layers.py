"""Contract: the layers point one way; only the store and the listener talk to asyncpg."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "gql"
DATABASE_DRIVERS = {"asyncpg"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_layers_only_the_store_and_the_listener_import_asyncpg() -> None:
    allowed = {PACKAGE / "listener.py", *(PACKAGE / "store").rglob("*.py")}
    offenders = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                       if p not in allowed and _imports(p) & DATABASE_DRIVERS)
    assert not offenders, f"asyncpg imported outside gql/store and gql/listener.py: {offenders}"


def test_layers_the_field_descriptions_import_no_executor() -> None:
    """The field table is read by both executors, so it depends on neither."""
    assert not _imports(PACKAGE / "schema" / "fields.py") & {"graphql", "asyncpg"}
    assert "import strawberry" not in (PACKAGE / "schema" / "fields.py").read_text()
