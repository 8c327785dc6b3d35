"""Sync benchmark: first sync, no-change re-sync and 1 %-change upstream bytes.

    .venv/bin/python bench/sync_bench.py              # all scenarios
    .venv/bin/python bench/sync_bench.py csv ldif     # some of them

Scenarios: csv and ldif with 50,000 users; connect (MariaDB, Connect schema) and ldap
(slapd) with 10,000 users. Each scenario runs in a fresh child process so its peak RSS
(ru_maxrss, which includes the interpreter and every import) is its own. Wall times
cover read + rules + diff + persist + queue, i.e. one ``SyncEngine.run``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clgwd.config import Secret, parse_config  # noqa: E402
from clgwd.config.pbx import LdapSettings, SyncConfig  # noqa: E402
from clgwd.pbx.connect_mysql import ConnectMysqlSource  # noqa: E402
from clgwd.pbx.csv_source import CsvSource  # noqa: E402
from clgwd.pbx.ldap_source import LdapSource  # noqa: E402
from clgwd.pbx.ldif_source import LdifSource  # noqa: E402
from clgwd.pbx.model import UserSource  # noqa: E402
from clgwd.pbx.mysql_common import MysqlReader  # noqa: E402
from clgwd.store import Store  # noqa: E402
from clgwd.sync.engine import SyncEngine  # noqa: E402
from tests.pbx.peers import MariaDB, Slapd, shoreware_user_sql  # noqa: E402

SIZES = {"csv": 50_000, "ldif": 50_000, "connect": 10_000, "ldap": 10_000}
FIRST = ["Ann", "Björn", "Chloé", "Dmitri", "Eve", "Farid", "Grace", "Hiro", "Inés", "陈"]
LAST = ["Martin", "Ångström", "Dubois", "Ivanov", "Nakamura", "Haddad", "O'Neil", "García"]


def person(i: int, changed: bool) -> dict[str, str]:
    rnd = random.Random(i)
    return {"key": f"k{i:06d}", "ext": str(100000 + i), "first": rnd.choice(FIRST),
            "last": rnd.choice(LAST), "email": f"user{i}@example.com",
            "dept": "Moved" if changed else rnd.choice(["Sales", "Support", "R&D"]),
            "mac": f"00:08:5D:{(i >> 16) & 255:02X}:{(i >> 8) & 255:02X}:{i & 255:02X}",
            "did": f"+1408{5000000 + i:07d}"}


def is_changed(i: int, pct: float) -> bool:
    return pct > 0 and i % int(100 / pct) == 0


def write_csv(path: Path, n: int, pct: float) -> None:
    lines = ["key,extension,first_name,last_name,email,department,device_mac,dids,groups"]
    for i in range(n):
        p = person(i, is_changed(i, pct))
        lines.append(f"{p['key']},{p['ext']},{p['first']},{p['last']},{p['email']},"
                     f"{p['dept']},{p['mac']},{p['did']},Staff")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def ldif_entry(i: int, pct: float, base: str, with_uuid: bool) -> str:
    """One inetOrgPerson; LDIF files carry entryUUID, slapd makes its own."""
    p = person(i, is_changed(i, pct))
    lines = [f"dn: uid={p['key']},{base}", "objectClass: inetOrgPerson", f"uid: {p['key']}",
             f"cn: {p['first']} {p['last']}", f"givenName: {p['first']}", f"sn: {p['last']}",
             f"telephoneNumber: {p['ext']}", f"mail: {p['email']}",
             f"departmentNumber: {p['dept']}"]
    if with_uuid:
        lines.append(f"entryUUID: 00000000-0000-4000-8000-{i:012d}")
    return "\n".join(lines) + "\n\n"


def write_ldif(path: Path, n: int, pct: float) -> None:
    path.write_text("version: 1\n\n" + "".join(
        ldif_entry(i, pct, "ou=people,dc=pbx,dc=test", True) for i in range(n)), "utf-8")


async def measure(store: Store, source: UserSource, mutate: Any, n: int) -> dict[str, Any]:
    engine = SyncEngine(store, source, "bench", SyncConfig(), read_timeout=600,
                        executor=EXECUTOR)  # as the sync component builds it
    t0, c0 = time.perf_counter(), time.process_time()
    first = await engine.run(actor="bench", trigger="schedule")
    first_s, first_cpu = time.perf_counter() - t0, time.process_time() - c0
    assert first.result == "ok" and first.counts["created"] == n, first.summary()
    row = await store.db.fetchone("SELECT max(seq), sum(length(payload)) FROM outbox")
    seq, full_bytes = row[0], row[1]
    t0, c0 = time.perf_counter(), time.process_time()
    again = await engine.run(actor="bench", trigger="schedule")
    resync_s, resync_cpu = time.perf_counter() - t0, time.process_time() - c0
    assert again.counts["unchanged"] == n, again.summary()
    row = await store.db.fetchone("SELECT max(seq) FROM outbox")
    seq2 = row[0]
    await asyncio.to_thread(mutate)
    t0 = time.perf_counter()
    changed = await engine.run(actor="bench", trigger="schedule")
    changed_s = time.perf_counter() - t0
    row = await store.db.fetchone("SELECT sum(length(payload)) FROM outbox WHERE seq > ?",
                                  (seq2,))
    return {"phases_first": first.timings, "phases_resync": again.timings,
            "users": n, "first_sync_s": round(first_s, 3), "resync_s": round(resync_s, 3),
            "first_cpu_s": round(first_cpu, 3), "resync_cpu_s": round(resync_cpu, 3),
            "one_pct_sync_s": round(changed_s, 3), "updated": changed.counts["updated"],
            "full_upload_bytes": full_bytes, "one_pct_bytes": row[0],
            "one_pct_ratio": round(row[0] / full_bytes, 4), "first_seq": seq}


def prepare(name: str, work: Path) -> tuple[dict[str, Any], Any]:
    """Generate the directory (or load the peer) in the parent process, so the child's
    peak RSS is the sync's, not the data generator's. Returns (child args, peer)."""
    n = SIZES[name]
    if name in ("csv", "ldif"):
        path = work / f"dir.{name}"
        (write_csv if name == "csv" else write_ldif)(path, n, 0)
        changed = work / f"dir-changed.{name}"
        (write_csv if name == "csv" else write_ldif)(changed, n, 1)
        return {"path": str(path), "changed": str(changed)}, None
    if name == "connect":
        db = MariaDB()
        db.start()
        db.create_database("shoreware", "shoreware.sql", "st_configread", "passwordconfigread")
        statements = []
        for i in range(n):
            p = person(i, False)
            statements.append(shoreware_user_sql(
                i + 1, p["ext"], p["first"], p["last"], p["email"], login=p["key"],
                mac=p["mac"], did_digits=str(i).zfill(4) if i < 1000 else None))
        db.sql("SET autocommit=0;\n" + "\n".join(statements) + "\nCOMMIT;", "shoreware")
        return {"port": db.port, "socket": str(db.socket)}, db
    server = Slapd()
    server.start()
    server.ldapadd("".join(ldif_entry(i, 0, PEOPLE, False) for i in range(n)))
    return {"port": server.port, "base": str(server.base)}, server


PEOPLE = "ou=people,dc=pbx,dc=test"
EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clgwd-sync")
"""One worker for the source read and the engine, as the sync component does."""


def child_source(name: str, args: dict[str, Any]) -> tuple[UserSource, Any]:
    """The source to measure and the 1 %-change mutation, inside the child."""
    n = SIZES[name]
    if name in ("csv", "ldif"):
        path = Path(args["path"])
        source: UserSource = CsvSource(path, executor=EXECUTOR) if name == "csv" else \
            LdifSource(path, LdapSettings(preset="openldap",
                                          attributes={"source_key": "entryUUID"}),
                       executor=EXECUTOR)
        return source, lambda: Path(args["changed"]).replace(path)
    if name == "connect":
        reader = MysqlReader("127.0.0.1", args["port"], user="st_configread",
                             password=Secret("passwordconfigread"), database="shoreware",
                             connect_timeout=10)

        def mutate_db() -> None:
            subprocess.run(["mariadb", "--no-defaults", f"--socket={args['socket']}", "-uroot",
                            "shoreware", "-e", "UPDATE TABAddresses SET DepartmentName='Moved'"
                            " WHERE AddressID % 100 = 0"], check=True)
        return ConnectMysqlSource(reader, 600), mutate_db
    ldif = "".join(f"dn: uid=k{i:06d},{PEOPLE}\nchangetype: modify\nreplace: departmentNumber\n"
                   "departmentNumber: Moved\n\n" for i in range(0, n, 100))

    def mutate_ldap() -> None:
        subprocess.run(["ldapmodify", "-x", "-H", f"ldap://127.0.0.1:{args['port']}",
                        "-D", Slapd.ADMIN_DN, "-w", Slapd.ADMIN_PW], input=ldif.encode(),
                       check=True, capture_output=True)
    return LdapSource("127.0.0.1", args["port"], LdapSettings(base_dn=PEOPLE, page_size=1000),
                      bind_dn=Slapd.ADMIN_DN, password=Secret(Slapd.ADMIN_PW),
                      timeout=600, executor=EXECUTOR), mutate_ldap


async def scenario(name: str, args: dict[str, Any], work: Path) -> dict[str, Any]:
    source, mutate = child_source(name, args)
    async with Store(parse_config(f"state: {{dir: {work / 'state'}}}\n")) as store:
        return await measure(store, source, mutate, SIZES[name])


def child(name: str, args: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix=f"clgwd-bench-{name}-") as tmp:
        result = asyncio.run(scenario(name, args, Path(tmp)))
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        child(argv[1], json.loads(argv[2]))
        return 0
    verbose = "-v" in argv
    names = [a for a in argv if a != "-v"] or list(SIZES)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
          "(wall times include waiting for CPU; cpu = this process's CPU seconds)")
    print(f"{'scenario':<9} {'users':>6} {'first s':>8} {'(cpu)':>6} {'resync s':>9} "
          f"{'(cpu)':>6} {'1% s':>6} {'1% bytes/full':>14} {'peak RSS MB':>12}")
    for name in names:
        with tempfile.TemporaryDirectory(prefix="clgwd-bench-data-") as tmp:
            args, peer = prepare(name, Path(tmp))
            try:
                done = subprocess.run([sys.executable, __file__, "--child", name,
                                       json.dumps(args)], check=True, capture_output=True,
                                      text=True, cwd=ROOT)
            finally:
                if peer is not None:
                    peer.stop()
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name:<9} {r['users']:>6} {r['first_sync_s']:>8.2f} {r['first_cpu_s']:>6.2f} "
              f"{r['resync_s']:>9.2f} {r['resync_cpu_s']:>6.2f} {r['one_pct_sync_s']:>6.2f} "
              f"{r['one_pct_ratio'] * 100:>13.2f}% "
              f"{r['peak_rss_mb']:>12.1f}", flush=True)
        if verbose:
            for phase in ("first", "resync"):
                steps = ", ".join(f"{k} {v:.2f}" for k, v in r[f"phases_{phase}"].items())
                print(f"    {phase} sync phases (s): {steps}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
