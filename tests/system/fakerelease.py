"""Small real releases for update tests: a ``clgwd`` wheel whose console script answers
``version`` and ``check-config`` (pip installs it for real, in seconds), bundled and
signed like a real release, and a release root with fake installed releases."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from clgwd.system import bundle
from clgwd.system import rollback as layout


def fake_wheel(dest: Path, version: str, *, reports: str | None = None) -> Path:
    """``clgwd-<version>-py3-none-any.whl`` with a ``clgwd`` script (module fakeclgwd)."""
    said = reports or version
    script = ("import sys\n\n\ndef main():\n    args = sys.argv[1:]\n"
              f"    if args[:1] == ['version']:\n        print('clgwd {said}')\n"
              "        return 0\n"
              "    return 0 if args[:1] == ['check-config'] else 1\n")
    info = f"clgwd-{version}.dist-info"
    files = {
        "fakeclgwd/__init__.py": script,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: clgwd\nVersion: {version}\n",
        f"{info}/WHEEL": ("Wheel-Version: 1.0\nGenerator: clgwd-tests\n"
                          "Root-Is-Purelib: true\nTag: py3-none-any\n"),
        f"{info}/entry_points.txt": "[console_scripts]\nclgwd = fakeclgwd:main\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest())
        record.append(f"{name},sha256={digest.rstrip(b'=').decode()},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"clgwd-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


def fake_bundle(tmp: Path, version: str, key: Ed25519PrivateKey, **kwargs: str) -> Path:
    wheel = fake_wheel(tmp / f"wheels-{version}", version, **kwargs)
    return bundle.build_bundle([wheel], version, key, tmp / "bundles")


def fake_root(tmp: Path, version: str = "0.1.0") -> Path:
    """A release root whose current release is a fake, complete ``version``."""
    root = tmp / "opt-clgwd"
    release = root / "releases" / version
    (release / "bin").mkdir(parents=True)
    (release / "bin" / "clgwd").write_text("#!/bin/sh\n")
    (release / layout.COMPLETE).write_text("1\n")
    os.symlink(f"releases/{version}", root / "current")
    return root
