"""The reference cloud speaks the protocol only: it never loads gateway internals."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import clgwd.refcloud

# ``clgwd.protocol`` is what both ends share (JSON-RPC envelope and matching, the tunnel
# wire format and engine, the binary-lane contract, socket options). ``clgwd.tasks`` is
# shared core (standard library only) that the tunnel engine itself runs on.
ALLOWED = ("clgwd.refcloud", "clgwd.protocol", "clgwd.tasks")


def test_refcloud_sources_import_only_the_protocol_module() -> None:
    """Every clgwd import in clgwd/refcloud/ is the protocol package or generic help."""
    root = Path(clgwd.refcloud.__file__).parent
    offenders = []
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            offenders += [f"{path.name}: {n}" for n in names
                          if n.startswith("clgwd") and not n.startswith(ALLOWED)]
    assert offenders == []


def test_running_refcloud_does_not_load_gateway_modules() -> None:
    """Importing the refcloud server loads no store, command router or link component."""
    code = ("import sys, clgwd.refcloud.server; "
            "print(sorted(m for m in sys.modules if m.startswith('clgwd')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    loaded = eval(out)
    assert not [m for m in loaded if m.startswith(("clgwd.store", "clgwd.commands",
                                                   "clgwd.link.component", "clgwd.config",
                                                   "clgwd.daemon"))], loaded
