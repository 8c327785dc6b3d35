"""Config section ``system``: how the gateway reboots, updates itself and hands out logs.

The appliance image decides the commands, never the cloud: ``config.set`` refuses
every key of this section (docs/config-system.md), because a command the cloud could
change is remote code execution as the daemon's user.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final

from pydantic import Field

from clgwd.config.types import AbsolutePath, Seconds, StrictModel

Command = Annotated[list[Annotated[str, Field(min_length=1, max_length=4096)]],
                    Field(min_length=1, max_length=64)]
"""An argv list run without a shell (``["systemctl", "reboot"]``)."""

DEFAULT_REBOOT_COMMAND: Final = ("systemctl", "reboot")


class SystemConfig(StrictModel):
    """Reboot, factory reset, updates and log collection (issue 5's Advanced page)."""

    reboot_command: Command = Field(default_factory=lambda: list(DEFAULT_REBOOT_COMMAND))
    """Run (no shell) to reboot the machine; the appliance image may point it at a
    helper when systemd is not PID 1."""
    reboot_restarts_daemon: bool = False
    """Reboot restarts only this daemon (exit code ``EXIT_RESTART``; systemd or the demo
    starts it again) and never runs ``reboot_command``: ``clgwd demo`` sets it, so the
    demo's Reboot cannot reboot the developer's machine."""
    reboot_timeout: Seconds = 60.0
    """A reboot command still running after this long is killed and reported failed."""
    action_delay: Seconds = 3.0
    """Pause between answering a reboot / factory reset and doing it, so the HTTP answer
    and the outbox flush to the cloud can still go out."""
    update_command: Command | None = None
    """Run (no shell) by ``update.apply`` and the update schedule. Unset (the default):
    updates are managed by the image and ``update.apply`` answers ``updates_unmanaged``."""
    update_timeout: Seconds = 1800.0
    """An update command still running after this long is killed and reported failed."""
    release_root: AbsolutePath = Path("/opt/clgwd")
    """Signed releases live in ``releases/<version>/`` here, ``current`` links to the
    running one (docs/updates.md). Without that link and without ``update_command``,
    updates are unmanaged."""
    release_key_file: AbsolutePath = Path("/usr/share/clgwd/release-key.pem")
    """The image's pinned Ed25519 release public key (PEM). When absent, the key the
    cloud delivered at enrollment is used."""
    update_health_timeout: Annotated[float, Field(ge=60, le=3600)] = 300.0
    """A new release must report healthy within this many seconds or it is rolled back."""
    update_max_bytes: Annotated[int, Field(ge=1 << 20, le=4 << 30)] = 512 << 20
    """Largest release bundle downloaded."""
    os_update_command: Command | None = None
    """Run (no shell) in each update before the clgwd release step: the image's Debian
    security updates (unattended-upgrades through its narrow privileged helper). Unset:
    OS packages are not updated by clgwd."""
    logs_max_bytes: Annotated[int, Field(ge=4096, le=4 * 1024 * 1024)] = 256 * 1024
    """Upper bound of the log lines ``logs.collect`` returns (the newest are kept and
    the answer says ``truncated: true``)."""
