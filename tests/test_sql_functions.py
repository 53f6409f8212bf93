"""SQL functions cannot silently ignore an argument.

In a LANGUAGE sql function a parameter named like a column of a table the statement reads is
shadowed by the column (`where o.currency = currency` compares the column with itself), and
PostgreSQL says nothing. The convention: parameters are named `p_…` and referenced by that
name, and the code calls functions with named arguments. These tests hold every function of
the schema, and every call in the code, to it.
"""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]

# Input parameters of ordergraph's functions, with the language and body of each.
FUNCTIONS = """
select p.oid::regprocedure::text as signature, l.lanname as language, p.prosrc as body,
       array(select a.name from unnest(coalesce(p.proargnames, '{}'),
                                       coalesce(p.proargmodes::text[], '{}')) as a(name, mode)
             where coalesce(a.mode, 'i') in ('i', 'b', 'v') and a.name <> '') as parameters,
       p.pronargs as arguments
from pg_proc p join pg_language l on l.oid = p.prolang
where p.pronamespace = current_schema()::regnamespace and p.proname like 'og\\_%'
  and p.prokind = 'f'
"""
COLUMNS = """
select distinct a.attname from pg_attribute a join pg_class c on c.oid = a.attrelid
where c.relnamespace = current_schema()::regnamespace and c.relkind = 'r'
  and a.attnum > 0 and not a.attisdropped
"""


async def test_no_parameter_can_be_taken_for_a_column(pool: asyncpg.Pool) -> None:
    columns = {r["attname"] for r in await pool.fetch(COLUMNS)}
    functions = await pool.fetch(FUNCTIONS)
    assert len(functions) > 40
    shadowed = [(f["signature"], name) for f in functions for name in f["parameters"]
                if name in columns]
    assert shadowed == []


async def test_sql_functions_reference_parameters_by_their_names(pool: asyncpg.Pool) -> None:
    """No `$1` and no `og_orders_page.p_lim`: a renamed parameter must break the function."""
    offending = []
    for f in await pool.fetch(FUNCTIONS):
        if f["language"] != "sql":
            continue
        name = f["signature"].split("(")[0]
        if re.search(r"\$\d", f["body"]) or re.search(rf"\b{name}\.\w", f["body"]):
            offending.append(f["signature"])
        unnamed = f["arguments"] - len(f["parameters"])
        if unnamed:
            offending.append(f"{f['signature']}: {unnamed} unnamed parameter(s)")
    assert offending == []


# where the code writes SQL: named queries and the compiled plans
SOURCES = [*(ROOT / "gql").rglob("*.py"), *(ROOT / "bench").glob("*.py")]
CALL = re.compile(r"(?<!function )(?<!def )\b(og_[a-z_]+)\(")  # a call, not a definition


async def test_code_calls_functions_of_three_or_more_arguments_with_names(pool: asyncpg.Pool) -> None:
    """A call of an SQL function (or of the append functions) with three or more positional
    arguments is one swap away from a silent mix-up."""
    arity = {f["signature"].split("(")[0]: f["arguments"] for f in await pool.fetch(FUNCTIONS)
             if f["language"] == "sql" or f["signature"].startswith(("og_append(", "og_register"))}
    positional = []
    for path in SOURCES:
        text = path.read_text()
        for match in CALL.finditer(text):
            name = match[1]
            if arity.get(name, 0) < 3:
                continue
            following = text[match.end():match.end() + 120].lstrip()
            if not re.match(r"(p_\w+|o|x|e)\s*=>", following):  # a row is named as itself
                line = text.count("\n", 0, match.start()) + 1
                positional.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert positional == []
