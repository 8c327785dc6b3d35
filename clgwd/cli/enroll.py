"""``clgwd enroll``: enroll this gateway with the cloud from the command line.

The token is read from a prompt or a file (``-`` = stdin), never from the command line,
where ``ps`` and shell history would keep it. When the daemon is running, the
enrollment goes through it (``cloud.enroll`` on the control socket, actor
``local:cli``), so its link connects at once; otherwise this process enrolls by itself
and the daemon uses the certificate when it starts (or within ``IDENTITY_RECHECK`` if
it was started meanwhile).

``--cloud-url URL`` and ``--cloud-ca FILE`` are the onboarding page's cloud address and
"Cloud CA certificate": checked here, used for this enrollment, and saved in the state
database once it succeeds (``clgwd.link.address``); without them the address in force
(saved, else ``cloud.url``) is used.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from clgwd.cli.common import Subparsers, control_request
from clgwd.config import DEFAULT_CONFIG_PATH, ClgwdConfig, ConfigError, Secret, load_config
from clgwd.config.proxy import ProxyTarget, effective_proxy
from clgwd.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, ClgwdError

if TYPE_CHECKING:
    from clgwd.link.address import AddressRequest
    from clgwd.link.identity import Enrollment


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "enroll", help="enroll this gateway with the cloud (Account ID + token)",
        description="Create the gateway key if needed, send a CSR with the Account ID and "
                    "enrollment token to the cloud address (--cloud-url, else the one saved "
                    "at the gateway, else cloud.url), and store the certificate and pinned "
                    "CA in <state dir>/cloud/. The running daemon connects by itself.")
    parser.add_argument("--config", "-c", type=Path, default=DEFAULT_CONFIG_PATH,
                        help=f"config file (default {DEFAULT_CONFIG_PATH})")
    parser.add_argument("--account", required=True, help="the Account ID from the cloud")
    parser.add_argument("--token-file", type=Path, default=None,
                        help="read the enrollment token from this file ('-' for stdin); "
                             "default: prompt")
    parser.add_argument("--cloud-url", metavar="URL", default=None,
                        help="the cloud's address (https://host[:port]); saved once the "
                             "enrollment succeeds, and then wins over cloud.url")
    parser.add_argument("--cloud-ca", metavar="FILE", type=Path, default=None,
                        help="PEM CA certificate of a cloud with a private CA (instead of "
                             "cloud.enrollment_ca_file); saved with the address")


def _read_token(path: Path | None) -> Secret:
    if path is None:
        return Secret(getpass.getpass("Enrollment token: ").strip())
    if str(path) == "-":
        return Secret(sys.stdin.readline().strip())
    return Secret(path.read_text(encoding="utf-8").strip())


def run(args: argparse.Namespace) -> int:
    from clgwd.link import address  # noqa: PLC0415 - only this command

    try:
        config = load_config(args.config)
    except ConfigError as err:
        print(err.render(), file=sys.stderr)
        return EXIT_CONFIG
    try:
        request = address.AddressRequest(
            url=None if args.cloud_url is None else address.cloud_url_param(args.cloud_url),
            ca_pem=None if args.cloud_ca is None else address.ca_file_text(args.cloud_ca))
    except ClgwdError as err:  # named as on the command line, not as the API's fields
        message = err.message.replace("cloud_url:", "--cloud-url:").replace(
            "cloud_ca_pem:", f"--cloud-ca {args.cloud_ca}:")
        print(f"nothing was sent: {message}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as err:
        print(f"cannot read {args.cloud_ca}: {err.strerror or err}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        token = _read_token(args.token_file)
    except OSError as err:
        print(f"cannot read the token: {err.strerror}", file=sys.stderr)
        return EXIT_FAILURE
    if not token:
        print("the enrollment token is empty", file=sys.stderr)
        return EXIT_FAILURE
    try:
        answer = _enroll_through_daemon(config, args.account, token, request)
    except PermissionError:
        print(f"permission denied on {config.control.socket}: run as root or a member of "
              "the clgwd group", file=sys.stderr)
        return EXIT_FAILURE
    if answer is not None:
        return _report_daemon_answer(*answer)
    try:
        # No daemon: the page's proxy setting is not read; the file's or HTTPS_PROXY is.
        proxy = effective_proxy(None, False, config.cloud.proxy,
                                config.cloud.proxy_from_environment, os.environ)
    except ValueError as err:
        print(f"enrollment failed: the proxy in the environment is unusable: {err}",
              file=sys.stderr)
        return EXIT_FAILURE
    try:
        result = asyncio.run(_enroll_offline(config, args.account, token, request, proxy))
    except ClgwdError as err:
        print(f"enrollment failed: {err.message}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as err:  # the state dir, or cloud.enrollment_ca_file (loaded by ssl,
        # whose error names no file)
        where = err.filename or config.cloud.enrollment_ca_file or "a file"
        print(f"enrollment failed: cannot read {where}: {err.strerror or err}",
              file=sys.stderr)
        return EXIT_FAILURE
    print(f"enrolled gateway {result.gateway_id} in account {result.account_id} with "
          f"{result.cloud_url}; certificate valid until {result.not_after:%Y-%m-%d %H:%M} UTC")
    return EXIT_OK


async def _enroll_offline(config: ClgwdConfig, account: str, token: Secret,
                          request: AddressRequest, proxy: ProxyTarget | None) -> Enrollment:
    """No daemon: the same plan as the link's (``clgwd.link.address.plan``) against the
    state database, which keeps the typed address once the cloud accepted."""
    from clgwd.link import address  # noqa: PLC0415 - only this command
    from clgwd.link.enroll import enroll  # noqa: PLC0415
    from clgwd.store import Store  # noqa: PLC0415

    async with Store(config) as store:
        try:
            saved = await address.load_saved(store)
        except ValueError:
            saved = None  # unreadable: the file applies, as in the daemon
        todo = address.plan(request, saved, config.cloud)
        result = await enroll(config.state.dir, todo.url, account, token, todo.ca_file,
                              proxy=proxy, ca_pem=todo.ca_pem)
        if todo.save:
            async with store.db.transaction() as tx:
                await address.save_in(tx, store, todo.url, todo.ca_pem, "local:cli")
        return result


def _enroll_through_daemon(config: ClgwdConfig, account: str, token: Secret,
                           request: AddressRequest) -> tuple[int, Any] | None:
    """``cloud.enroll`` on the running daemon; ``None`` when no daemon answers."""
    body: dict[str, Any] = {"account_id": account, "token": token.reveal()}
    if request.url is not None:
        body["cloud_url"] = request.url
    if request.ca_pem is not None:
        body["cloud_ca_pem"] = request.ca_pem
    try:
        return asyncio.run(control_request(config.control.socket, "POST",
                                           "/v1/command/cloud.enroll", 60, body))
    except (aiohttp.ClientConnectionError, FileNotFoundError, ConnectionRefusedError):
        return None


def _report_daemon_answer(status: int, body: Any) -> int:
    if status != 200 or not isinstance(body, dict):
        message = body.get("message") if isinstance(body, dict) else None
        print(f"enrollment failed: {message or f'HTTP {status} from the daemon'}",
              file=sys.stderr)
        return EXIT_FAILURE
    print(f"enrolled in account {body.get('account_id')} through the running daemon; "
          f"cloud link: {body.get('link')}")
    return EXIT_OK
