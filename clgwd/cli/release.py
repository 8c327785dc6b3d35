"""``clgwd release build|verify``: make and check signed release bundles (offline tools).

``build`` copies the checkout, stamps the version into the copy, runs ``pip wheel`` for
clgwd and all its dependencies (the appliance installs without network), and writes one
signed bundle; its path is the last line printed. ``verify`` exits 0 when signature,
manifest and hashes hold, 1 with the reason otherwise (2 for a bad key file).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final

import clgwd
from clgwd.cli.common import Subparsers
from clgwd.errors import EXIT_FAILURE, EXIT_OK
from clgwd.system.bundle import (
    DEFAULT_MAX_BYTES,
    BundleInvalid,
    ReleaseKeyError,
    build_bundle,
    load_private_key,
    load_public_key,
    parse_version,
    verify_bundle,
)

EXIT_INVALID: Final = EXIT_FAILURE
"""The bundle (or the checkout) failed: what failed is printed."""
EXIT_USAGE: Final = 2
"""A bad key file or version, as argparse exits for a bad argument."""
_IGNORED: Final = (".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__",
                   ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis",
                   "node_modules")
_VERSION_LINE = re.compile(r'^__version__ = "[^"]*"$', re.M)
PIP_TIMEOUT: Final = 1800
DEFAULT_EXTRAS: Final = "fast"
_EXTRAS = re.compile(r"([a-z0-9_-]+(,[a-z0-9_-]+)*)?")


def add_parser(sub: Subparsers) -> None:
    release = sub.add_parser(
        "release", help="build or verify a signed release bundle",
        description="Build a signed release bundle from a checkout, or verify one.")
    actions = release.add_subparsers(dest="release_action", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build", help="build a bundle from the current checkout",
        description="Build the wheels of clgwd and all its dependencies from the checkout, "
                    "write a manifest of their SHA-256 sums signed with the Ed25519 release "
                    "key, and pack everything into one file. Prints its path last.")
    build.add_argument("--key", type=Path, required=True,
                       help="Ed25519 private key, PEM (openssl genpkey -algorithm ed25519)")
    build.add_argument("--out", type=Path, required=True, help="directory for the bundle")
    build.add_argument("--version", default=None,
                       help=f"release version (default: the checkout's, {clgwd.__version__})")
    build.add_argument("--source", type=Path, default=None,
                       help="checkout to build (default: the one this clgwd runs from)")
    build.add_argument("--extras", default=DEFAULT_EXTRAS,
                       help=f"optional dependency groups to ship, comma-separated, '' for "
                            f"none (default {DEFAULT_EXTRAS!r}, as the appliance image "
                            "installs)")
    verify = actions.add_parser(
        "verify", help="check a bundle's signature, manifest and hashes",
        description="Exit 0 when the bundle is signed by the key and every file matches "
                    "the manifest; otherwise print what failed and exit 1.")
    verify.add_argument("bundle", type=Path, help="the bundle file")
    verify.add_argument("--key", type=Path, required=True, help="Ed25519 public key, PEM")
    verify.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                        help=f"refuse larger bundles (default {DEFAULT_MAX_BYTES})")


def run(args: argparse.Namespace) -> int:
    if args.release_action == "build":
        return _build(args)
    return _verify(args)


def _verify(args: argparse.Namespace) -> int:
    try:
        key = load_public_key(args.key)
    except ReleaseKeyError as err:
        print(f"release verify: {err.message}", file=sys.stderr)
        return EXIT_USAGE
    try:
        manifest = verify_bundle(args.bundle, key, max_bytes=args.max_bytes)
    except BundleInvalid as err:
        print(f"release verify: {args.bundle}: REFUSED: {err.message}", file=sys.stderr)
        return EXIT_INVALID
    print(f"{args.bundle}: OK: clgwd {manifest.version}, {len(manifest.files)} wheels, "
          f"{manifest.total_size} bytes, Python {manifest.python} {manifest.machine}, "
          f"signed {manifest.created_at}")
    return EXIT_OK


def _build(args: argparse.Namespace) -> int:
    version = args.version or clgwd.__version__
    try:
        parse_version(version)
        key = load_private_key(args.key)
        source = args.source or default_source()
        with tempfile.TemporaryDirectory(prefix="clgwd-release-") as tmp:
            wheels = build_wheels(source, version, Path(tmp), args.extras)
            bundle = build_bundle(wheels, version, key, args.out)
    except (BundleInvalid, ReleaseKeyError) as err:
        print(f"release build: {err.message}", file=sys.stderr)
        return EXIT_USAGE
    except BuildFailed as err:
        print(f"release build: {err}", file=sys.stderr)
        return EXIT_INVALID
    print(f"clgwd {version}: {len(wheels)} wheels signed")
    print(bundle)
    return EXIT_OK


class BuildFailed(Exception):
    """The checkout could not be turned into wheels."""


def default_source() -> Path:
    """The checkout this clgwd runs from (an editable install), else the working dir."""
    here = Path(clgwd.__file__).resolve().parent.parent
    for candidate in (here, Path.cwd()):
        if (candidate / "pyproject.toml").is_file() and (candidate / "clgwd").is_dir():
            return candidate
    raise BuildFailed("no checkout found: run from the source tree or pass --source")


def build_wheels(source: Path, version: str, work: Path, extras: str = "") -> list[Path]:
    """Wheels of clgwd ``version`` (built from a copy of ``source``) and its dependencies."""
    if not _EXTRAS.fullmatch(extras):
        raise BuildFailed(f"--extras {extras!r}: must be comma-separated group names")
    copy = work / "src"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns(*_IGNORED))
    init = copy / "clgwd" / "__init__.py"
    text = init.read_text(encoding="utf-8")
    if not _VERSION_LINE.search(text):
        raise BuildFailed(f"{init}: no __version__ line to stamp")
    init.write_text(_VERSION_LINE.sub(f'__version__ = "{version}"', text), encoding="utf-8")
    out = work / "wheels"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(out),
         f"{copy}[{extras}]" if extras else str(copy)],
        capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise BuildFailed(f"pip wheel failed (exit {result.returncode}):\n{tail}")
    wheels = sorted(out.glob("*.whl"))
    if not any(w.name.startswith(f"clgwd-{version}-") for w in wheels):
        raise BuildFailed(f"pip wheel produced no clgwd-{version} wheel")
    return wheels
