"""The import rules of docs/architecture.md, checked on every module of ``clgwd``.

One table says which part may import which (``MAY_IMPORT``), one which third-party
network library may be imported where (``WRAPPERS``). Parts that do not exist yet
(settings, inventory, monitor) have their rows already, so their first module is
checked; a module of a part that has no row fails until the table (and the document)
says where it stands.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

import clgwd

PACKAGE_DIR = Path(clgwd.__file__).parent

CORE_MODULES = frozenset({"errors", "component", "tasks", "commands", "metrics", "logsetup",
                          "sdnotify", "retry", "logbuffer"})
"""``clgwd.<name>`` modules that form the shared core (part ``core``)."""

EVERYTHING = frozenset({"*"})

MAY_IMPORT: Mapping[str, frozenset[str]] = {
    # part: what of ours it may import besides itself (a part, or a module prefix such
    # as "monitor.snmp"). Every part but config and refcloud may also use core + config.
    "core": frozenset({"config"}),
    "config": frozenset(),
    "settings": frozenset({"config", "store"}),
    "store": frozenset({"config"}),
    "protocol": frozenset({"config"}),
    "pbx": frozenset({"config"}),
    "sync": frozenset({"pbx", "store", "settings", "config"}),
    "link": frozenset({"protocol", "store", "config"}),
    "tunnel": frozenset({"protocol", "store", "config"}),
    "net": frozenset({"config", "store", "settings"}),
    "sip": frozenset({"config", "store"}),
    "inventory": frozenset({"monitor.snmp", "store", "config", "settings"}),
    "monitor": frozenset({"store", "config", "settings"}),
    "system": frozenset({"store", "config", "settings"}),
    "web": frozenset({"config", "system.site"}),
    "control": frozenset({"config", "web"}),
    "appliance": frozenset({"config"}),
    "cli": EVERYTHING,
    "daemon": EVERYTHING,
    "refcloud": frozenset({"protocol", "core.tasks"}),
    "main": frozenset({"cli"}),
}
"""``control`` is the control socket (a front door like web and the CLI; it reuses the
web part's error middleware); ``main`` is ``python -m clgwd``. The daemon is the
composition root: it builds every part's component. ``system`` answers ``config.get`` and
``config.set`` by the settings rule; ``web`` validates ``PUT /site`` with the system
component's own params model (``system.site.SiteInfo``), one set of rules for every
front door."""

NO_IMPLICIT = frozenset({"config", "refcloud"})
"""Parts that may not use the shared core and config implicitly."""

WRAPPERS: Mapping[str, tuple[str, ...]] = {
    "zeroconf": ("net.mdns",),
    "pyroute2": ("net.netlink",),
    "websockets": ("link.ws", "link.ws_picows", "link.backends", "refcloud"),
    "picows": ("link.ws", "link.ws_picows", "link.backends", "refcloud"),
    "aiomqtt": ("monitor.mqtt",),
    "pysnmp": ("monitor.snmp",),
}
"""Each third-party network library only in the module of ours that wraps it."""

KNOWN_VIOLATIONS: Mapping[tuple[str, str], str] = {
    ("web", "store"): "the page keeps its admin password and login history, and reads "
                      "alerts and events, through the Store API; they move behind "
                      "components (issue 14, web work on another branch)",
}
"""Edges that break the table today, each with the reason and the work that removes it.
The test fails when one of them no longer occurs, so the list only shrinks."""


def module_name(path: Path) -> str:
    parts = ("clgwd", *path.relative_to(PACKAGE_DIR).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[str]:
    """Every module ``path`` imports (lazy and TYPE_CHECKING imports included)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append(module)
            # ``from clgwd.net import dhcp`` imports the module clgwd.net.dhcp
            found += [f"{module}.{alias.name}" for alias in node.names
                      if module.startswith("clgwd")
                      and (PACKAGE_DIR.parent / module.replace(".", "/") / alias.name).exists()]
    return found


def part_of(module: str) -> str:
    """``clgwd.net.dhcp`` -> ``net``; a shared core module -> ``core``."""
    parts = module.split(".")
    if len(parts) == 1:
        return "root"
    if parts[1] in CORE_MODULES:
        return "core"
    return {"__main__": "main"}.get(parts[1], parts[1])


def allowed(source_part: str, target: str) -> bool:
    """May a module of ``source_part`` import the module ``target`` (one of ours)?"""
    target_part = part_of(target)
    rules = MAY_IMPORT[source_part]
    if target_part in (source_part, "root") or rules == EVERYTHING:
        return True
    if source_part not in NO_IMPLICIT and target_part in ("core", "config"):
        return True
    inner = target.split(".", 1)[1] if "." in target else ""
    relative = f"core.{inner}" if target_part == "core" else inner
    return any(rule == target_part or relative == rule or relative.startswith(rule + ".")
               for rule in rules)


def violations(graph: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
    """(importing module, imported module) pairs the table forbids."""
    out = []
    for module, imported in graph.items():
        source = part_of(module)
        for target in imported:
            if target.startswith("clgwd") and not allowed(source, target):
                out.append((module, target))
    return out


def wrapper_violations(graph: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
    out = []
    for module, imported in graph.items():
        inner = module.split(".", 1)[1] if "." in module else ""
        for target in imported:
            library = target.split(".")[0]
            homes = WRAPPERS.get(library)
            if homes is not None and not any(inner == h or inner.startswith(h + ".")
                                             for h in homes):
                out.append((module, target))
    return out


def package_graph() -> dict[str, list[str]]:
    return {module_name(path): imports_of(path) for path in sorted(PACKAGE_DIR.rglob("*.py"))}


GRAPH = package_graph()


def test_every_part_has_a_row_in_the_table() -> None:
    """A module of a part the table does not know fails: the table says where it stands."""
    unknown = sorted({part_of(m) for m in GRAPH} - set(MAY_IMPORT) - {"root"})
    assert unknown == [], f"add these parts to MAY_IMPORT and docs/architecture.md: {unknown}"


def test_parts_import_only_what_the_table_allows() -> None:
    """Every import of ours between parts is allowed by the table (or a known, listed
    violation that another branch removes)."""
    known = set(KNOWN_VIOLATIONS)
    found = violations(GRAPH)
    unexpected = [(m, t) for m, t in found if (part_of(m), part_of(t)) not in known]
    assert unexpected == []


def test_known_violations_still_exist() -> None:
    """Each listed violation still occurs; once fixed, it must leave the list."""
    occurring = {(part_of(m), part_of(t)) for m, t in violations(GRAPH)}
    assert sorted(set(KNOWN_VIOLATIONS) - occurring) == []


def test_network_libraries_only_in_their_wrappers() -> None:
    """zeroconf, pyroute2, websockets/picows, aiomqtt and pysnmp each stay in the one
    module of ours that wraps them."""
    assert wrapper_violations(GRAPH) == []


def test_config_package_has_no_import_cycle() -> None:
    """The modules of clgwd.config import each other without a cycle (sections import
    clgwd.config.types, never clgwd.config.models)."""
    config = {m: [t for t in targets if t.startswith("clgwd.config.") and t in GRAPH]
              for m, targets in GRAPH.items() if m.startswith("clgwd.config")}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in config.get(module, []):
            if state.get(target) == 1 and not cycle:
                cycle.extend([*path[path.index(target):], target] if target in path
                             else [module, target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in config:
        if module not in state:
            visit(module, [module])
    assert cycle == []


@pytest.mark.parametrize(("module", "target", "ok"), [
    ("clgwd.pbx.csv_source", "clgwd.web.api", False),
    ("clgwd.pbx.csv_source", "clgwd.link.component", False),
    ("clgwd.tunnel.gateway", "clgwd.pbx.model", False),
    ("clgwd.refcloud.server", "clgwd.store", False),
    ("clgwd.refcloud.server", "clgwd.config", False),
    ("clgwd.refcloud.hub", "clgwd.tasks", True),
    ("clgwd.refcloud.hub", "clgwd.protocol.session", True),
    ("clgwd.web.api.gateway", "clgwd.net.component", False),
    ("clgwd.web.models", "clgwd.system.site", True),
    ("clgwd.web.api.gateway", "clgwd.system.component", False),
    ("clgwd.system.component", "clgwd.settings.saved", True),
    ("clgwd.net.dhcp", "clgwd.retry", True),
    ("clgwd.inventory.component", "clgwd.monitor.snmp", True),
    ("clgwd.inventory.component", "clgwd.monitor.mqtt", False),
    ("clgwd.monitor.snmp", "clgwd.sip.component", False),
    ("clgwd.settings.rule", "clgwd.store", True),
    ("clgwd.config.models", "clgwd.errors", False),
    ("clgwd.sync.component", "clgwd.settings", True),
    ("clgwd.link.component", "clgwd.errors", True),
    ("clgwd.daemon", "clgwd.web.server", True),
])
def test_the_checker_applies_the_table(module: str, target: str, ok: bool) -> None:
    """The rules catch what the architecture forbids (pbx -> web/link, tunnel -> pbx,
    refcloud -> gateway internals, ...) and let through what it allows."""
    assert (violations({module: [target]}) == []) is ok


def test_the_checker_finds_a_network_library_outside_its_wrapper() -> None:
    """zeroconf imported by the advertiser (not net.mdns) is reported; in net.mdns not."""
    assert wrapper_violations({"clgwd.net.advertiser": ["zeroconf.asyncio"]}) != []
    assert wrapper_violations({"clgwd.net.mdns": ["zeroconf.asyncio"]}) == []
    assert wrapper_violations({"clgwd.sip.trace": ["aiomqtt"]}) != []


def test_daemon_import_loads_no_part_library() -> None:
    """Importing the CLI and the daemon (what `clgwd run` does before any part starts)
    loads none of the libraries a part imports when it starts: pyroute2, zeroconf,
    ldap3, aiomysql, websockets, picows (a guard for the lean idle daemon)."""
    code = ("import sys, clgwd.cli, clgwd.daemon; print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in {'pyroute2', 'zeroconf', 'ldap3', 'aiomysql', 'pymysql',"
            " 'websockets', 'picows', 'aiomqtt', 'pysnmp'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
