"""The reference cloud speaks the protocol only: it never loads gateway internals."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import clgwd.refcloud

# The protocol modules: JSON-RPC messages, and the tunnel frame codec and session engine
# (both ends of a tunnel run the same flow-control code); plus generic helpers.
ALLOWED = ("clgwd.refcloud", "clgwd.link.protocol", "clgwd.cli_support",
           "clgwd.tunnel.wire", "clgwd.tunnel.session", "clgwd.channel", "clgwd.tasks",
           "clgwd.linksock")


def test_refcloud_sources_import_only_the_protocol_module() -> None:
    """Every clgwd import in clgwd/refcloud/ is the protocol module or generic help."""
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
    code = ("import sys, clgwd.refcloud.server, clgwd.refcloud.cli; "
            "print(sorted(m for m in sys.modules if m.startswith('clgwd')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    loaded = eval(out)
    assert not [m for m in loaded if m.startswith(("clgwd.store", "clgwd.commands",
                                                   "clgwd.link.link", "clgwd.config",
                                                   "clgwd.daemon"))], loaded
