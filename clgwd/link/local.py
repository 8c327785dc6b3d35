"""The link's local commands (onboarding page, CLI): ``cloud.status`` and ``cloud.enroll``.

Shapes are those of docs/api.md ("Cloud link"). The enrollment token arrives as a plain
string in the params and is wrapped in a ``Secret`` at once; it is never logged, stored
or returned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from clgwd.config import Secret
from clgwd.errors import ClgwdError
from clgwd.link.identity import Enrollment

ACCOUNT_ID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TOKEN_MIN: Final = 8
TOKEN_MAX: Final = 4096

ENROLL_FIELDS: Final = frozenset({"account_id", "token", "cloud_url", "cloud_ca_pem"})
"""``cloud.enroll`` params; the address and CA are checked by ``clgwd.link.address``."""

LINK_CONNECTED: Final = "connected"
LINK_CONNECTING: Final = "connecting"
LINK_DISCONNECTED: Final = "disconnected"
LINK_NOT_ENROLLED: Final = "not_enrolled"


class InvalidEnrollment(ClgwdError):
    """The Account ID or token is malformed; nothing was sent to the cloud."""

    code = "invalid_input"
    http_status = 422


class CloudUnavailable(ClgwdError):
    """A request to the cloud for another part (an update check) could not be made."""

    code = "cloud_unavailable"
    http_status = 503


class CloudNotConfigured(ClgwdError):
    """``cloud.url`` is not set, so there is nowhere to enroll."""

    code = "cloud_not_configured"
    http_status = 409


def enroll_params(params: Mapping[str, Any]) -> tuple[str, Secret]:
    """Validate ``{"account_id", "token"}`` (and refuse unknown fields); the token comes
    back as a ``Secret``."""
    account_id = params.get("account_id")
    token = params.get("token")
    problems = []
    if not isinstance(account_id, str) or not ACCOUNT_ID_RE.match(account_id):
        problems.append("account_id: must be 1-64 letters, digits, '_' or '-'")
    if not isinstance(token, str) or not TOKEN_MIN <= len(token.strip()) <= TOKEN_MAX:
        problems.append(f"token: must be {TOKEN_MIN}-{TOKEN_MAX} characters")
    unknown = sorted(str(k) for k in params if k not in ENROLL_FIELDS)
    if unknown:
        problems.append(f"unknown field(s) {', '.join(unknown)}")
    if problems:
        raise InvalidEnrollment("; ".join(problems))
    assert isinstance(account_id, str) and isinstance(token, str)
    return account_id, Secret(token.strip())


def status_view(*, state: str, enrollment: Enrollment | None, cloud_url: str | None,
                since: float, message: str, alert: str | None) -> dict[str, Any]:
    """``cloud.status``: the link state machine seen by a technician.

    ``state`` is a ``LinkState`` value. ``alert`` is the message of an active
    authentication/certificate alert; it explains a link that is not connected.
    """
    enrolled = enrollment is not None and enrollment.cloud_url == cloud_url
    if not enrolled:
        link = LINK_NOT_ENROLLED
    elif state == "online":
        link = LINK_CONNECTED
    elif state == "connecting":
        link = LINK_CONNECTING
    elif state in ("not_enrolled", "not_configured"):
        # Enrolled on disk, but the supervisor has not picked it up yet (it polls).
        link = LINK_CONNECTING if cloud_url else LINK_DISCONNECTED
    else:
        link = LINK_DISCONNECTED
    if link != LINK_CONNECTED and alert:
        message = alert
    return {"enrolled": enrolled,
            "account_id": enrollment.account_id if enrollment is not None else None,
            "link": link, "since": since, "message": message}
