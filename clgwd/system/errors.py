"""The system part's expected errors (stable code, HTTP status for the page)."""

from __future__ import annotations

from clgwd.errors import ClgwdError


class InvalidParams(ClgwdError):
    """A parameter is missing, unknown or out of range; the message names it."""

    code = "invalid_params"
    http_status = 422


class ForbiddenConfigKey(ClgwdError):
    """``config.set`` touched a key the cloud may not change remotely."""

    code = "forbidden_key"
    http_status = 403


class ActionInProgress(ClgwdError):
    """A reboot, factory reset or update is already under way."""

    code = "busy"
    http_status = 409


class UpdatesUnmanaged(ClgwdError):
    """No ``system.update_command``: the image manages updates."""

    code = "updates_unmanaged"
    http_status = 409


class SystemUnavailable(ClgwdError):
    """The action cannot be done on this gateway now (no config file, disk error)."""

    code = "system_unavailable"
    http_status = 409
