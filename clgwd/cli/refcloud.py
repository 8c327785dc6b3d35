"""``clgwd refcloud``: run the reference cloud in the foreground (dev, demo, tests)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import logging
import signal
from pathlib import Path

from clgwd.cli.common import Subparsers, print_banner


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "refcloud", help="run the reference cloud (development and demo)",
        description="Serve the reference cloud: enrollment CA, tunnel authority, gateway "
                    "websocket, read-only web view and admin API (commands, tunnel "
                    "start/stop/launch), state in --dir.")
    parser.add_argument("--dir", type=Path, required=True, help="state directory")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8443, help="HTTPS port (8443)")
    parser.add_argument("--view-port", type=int, default=None,
                        help="also serve the read-only view over plain HTTP on this port")
    parser.add_argument("--account", default="demo",
                        help="create an enrollment token for this Account ID (demo)")
    parser.add_argument("--token-uses", type=int, default=1,
                        help="how many gateways may enroll with that token (1)")
    parser.add_argument("--cert-lifetime-hours", type=float, default=168.0,
                        help="client certificate lifetime (168 = 7 days)")
    parser.add_argument("--release-key", type=Path, default=None,
                        help="Ed25519 release public key (PEM) to give gateways at "
                             "enrollment (docs/updates.md)")


def _raw_key_b64(path: Path) -> str:
    """Base64 of the raw 32-byte Ed25519 public key in a PEM file."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - this command

    from clgwd.system.bundle import ReleaseKeyError, load_public_key  # noqa: PLC0415

    try:
        key = load_public_key(path)
    except ReleaseKeyError as err:
        raise SystemExit(f"refcloud --release-key: {err.message}") from None
    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)).decode()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    release_key = _raw_key_b64(args.release_key) if args.release_key is not None else None
    return asyncio.run(_serve(args, release_key))


async def _serve(args: argparse.Namespace, release_key: str | None) -> int:
    from clgwd.refcloud.server import RefCloud  # noqa: PLC0415 - only this command

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    lifetime = dt.timedelta(hours=args.cert_lifetime_hours)
    async with RefCloud(args.dir, args.host, args.port, cert_lifetime=lifetime,
                        view_port=args.view_port) as cloud:
        cloud.release_key = release_key
        token = await cloud.create_token(args.account, uses=args.token_uses)
        print_banner([
            f"clgwd reference cloud: {cloud.url}/   view: {cloud.view_url}/",
            f"  CA to trust for enrollment: {cloud.ca_file}",
            f"  Account ID: {args.account}   enrollment token: {token}",
            f"  admin API token: {cloud.admin_token}",
            f"  tunnel authority public key (sent at enrollment): "
            f"{cloud.tunnels.authority.public_key_b64}",
            "  Launch a gateway's tunnel (prints a local URL through the tunnel):",
            f"    curl --cacert {cloud.ca_file} -H 'Authorization: Bearer "
            f"{cloud.admin_token}' -d '{{}}'",
            f"      {cloud.url}/api/gateways/<gateway id>/tunnels/<tunnel>/launch",
            "Press Ctrl-C to stop.",
        ])
        await stop.wait()
    return 0
