"""A source reusing its previous read's users (``ReadMemo``) must sync exactly like a
fresh source: same plan, same irregularity lists and counts, same records.

Two engines on two state databases read the same CSV file through a sequence of
edits; one keeps its ``CsvSource`` (memo warm), the other gets a new one each time.
The edits make unchanged rows *become* irregular (another row takes their email),
regular again, renumbered and duplicated, which a memo that skipped the rules for
unchanged rows would get wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clgwd.config import parse_config
from clgwd.config.pbx import ClientUsernameSettings, SyncConfig
from clgwd.pbx.csv_source import CsvSource
from clgwd.store import Store
from clgwd.sync.engine import SyncEngine

HEADER = "key,extension,first_name,last_name,email,client_username,dids\n"
BASE = [f"k{i},{100 + i},F{i},L{i},u{i}@x.test,c{i},+1408555{1000 + i}" for i in range(40)]


def _edits() -> list[list[str]]:
    steps = [list(BASE)]
    second = list(BASE)
    second[5] = second[5].replace("u5@x.test", "u6@x.test")  # k5 and k6 now share one
    second[7] = second[7].replace(",,", ",")  # unchanged text elsewhere
    second[8] = "k8,108,F8,L8,,c8,"  # loses its email
    steps.append(second)
    third = list(second)
    third[5] = BASE[5]  # k6 is regular again although its own row never changed
    third[9] = "k9,199,F9,L9,u9@x.test,c9,+14085551009"  # renumbered
    third.append("k10,110,Dup,Key,dup@x.test,d,")  # duplicate key
    steps.append(third)
    steps.append(list(third))  # no change at all
    return steps


def _comparable(outcome: dict[str, Any]) -> dict[str, Any]:
    keep = ("result", "counts", "dids", "irregularities", "changes")
    return {k: outcome.get(k) for k in keep}


async def test_memo_and_fresh_sources_sync_the_same(tmp_path: Path) -> None:
    csv = tmp_path / "users.csv"
    rules = SyncConfig(client_username=ClientUsernameSettings(append_domain="x.test"),
                       max_missing_ratio=1.0, max_deletions_per_run=100)
    stores = [Store(parse_config(f"state: {{dir: {tmp_path / name}}}\n"))
              for name in ("warm", "fresh")]
    async with stores[0] as warm_store, stores[1] as fresh_store:
        warm_source = CsvSource(csv, country_code="1")
        for rows in _edits():
            csv.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
            outcomes = []
            for store, source in ((warm_store, warm_source),
                                  (fresh_store, CsvSource(csv, country_code="1"))):
                engine = SyncEngine(store, source, "pbx", rules, read_timeout=10)
                preview = await engine.run(actor="t", trigger="now", preview=True)
                applied = await engine.run(actor="t", trigger="now")
                outcomes.append((_comparable(preview.as_json()),
                                 _comparable(applied.as_json())))
            assert outcomes[0] == outcomes[1]
        for query in ("SELECT source_key, fingerprint, user, revision, absent_reads, deleted"
                      " FROM sync_snapshot ORDER BY source_key",
                      "SELECT idempotency_key, payload FROM outbox"
                      " WHERE kind = 'user.change' ORDER BY seq"):
            warm = [tuple(r) for r in await warm_store.db.fetchall(query)]
            fresh = [tuple(r) for r in await fresh_store.db.fetchall(query)]
            assert warm == fresh
        irregular = outcomes[0][1]["irregularities"]
        assert irregular["no_email_count"] == 1 and irregular["row_problem_count"] == 1
