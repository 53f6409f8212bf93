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


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _dependencies(path: Path) -> set[str]:
    """The gql modules a module needs, wherever it imports them: at the top, under
    TYPE_CHECKING, inside a function, or by name through `strawberry.lazy`."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("lazy", "import_module") and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names.add(node.args[0].value)
    return {name for name in names if name in MODULES} - {_module_name(path)}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph (its modules, the first repeated at the end), or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module):], module]
        if module in done:
            return None
        path.append(module)
        for needed in sorted(graph[module]):
            found = visit(needed)
            if found:
                return found
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        found = visit(module)
        if found:
            return found
    return None


def test_layers_the_cycle_finder_sees_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_layers_gql_has_no_import_cycle() -> None:
    """Modules that need each other are one concept split in two: a newcomer cannot read
    either first, and the import order decides what works."""
    graph = {name: _dependencies(path) for name, path in MODULES.items()}
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def _coded_classes(path: Path) -> list[str]:
    """The classes a module derives (from an exception, or anything) with a `code` attribute:
    an API error code. A plain record that reports a code (an import's refused line) is not
    one."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef) and node.bases:
            for statement in node.body:
                targets = (statement.targets if isinstance(statement, ast.Assign)
                           else [statement.target] if isinstance(statement, ast.AnnAssign)
                           else [])
                if any(isinstance(t, ast.Name) and t.id == "code" for t in targets):
                    found.append(node.name)
    return found


def test_layers_coded_errors_are_defined_only_in_gql_errors() -> None:
    home = PACKAGE / "errors.py"
    elsewhere = {str(p.relative_to(PACKAGE)): _coded_classes(p)
                 for p in PACKAGE.rglob("*.py") if p != home}
    assert not {path: names for path, names in elsewhere.items() if names}, (
        "error classes with a `code` belong in gql/errors.py")


def test_layers_every_coded_error_is_in_the_table() -> None:
    from gql import errors

    table = errors.__doc__ or ""
    coded = [cls for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, errors.DomainError)
             and cls is not errors.DomainError]
    assert coded
    missing = [cls.__name__ for cls in coded
               if cls.__name__ not in table or f"`{cls.code}`" not in table]
    assert not missing, f"gql/errors.py's table does not describe {missing}"
