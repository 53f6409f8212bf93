"""An event type and a read-model field, declared once, reach every surface.

tests/declared_type.py declares `GiftWrapped` (a mutation, typed data, a rule, a grant) and a
read-model field `giftPaper` it sets, and edits nothing else; run in its own process, it
migrates a fresh database and reports what each surface showed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gql.catalogue import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]


def test_a_declared_event_type_reaches_every_surface(empty_database_url: str) -> None:
    run = subprocess.run([sys.executable, "-m", "tests.declared_type", empty_database_url],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.splitlines()[-1])
    wrapped = {"type": "GIFT_WRAPPED", "paper": "gold", "note": "happy birthday"}
    assert seen["sdl"]
    assert seen["grants"] == [["admin", ""], ["service", "fulfilment"]]
    assert seen["refused"] == {"code": "BAD_USER_INPUT", "field": "paper"}
    assert seen["mutation"] == {"event": wrapped, "order": {"status": "PAID", "giftPaper": "gold"}}
    assert seen["subscription"] == {**wrapped, "order": {"giftPaper": "gold"}}
    read = {"order": {"giftPaper": "gold", "stateAt": {"status": "PAID"},
                      "events": {"nodes": [wrapped]}}}
    assert seen["compiled"] == seen["resolvers"] == read
    assert seen["export"] == [{"paper": "gold", "note": "happy birthday"}]
    assert seen["rebuilt_equal"]


def test_readme_shows_the_declared_event_types() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- the declared event types -->\n")[1].split("<!-- end of")[0]
    assert table == CATALOGUE.table(), "run `ordergraph schema --events` into README's table"
