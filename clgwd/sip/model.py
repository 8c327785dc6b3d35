"""The trunk model: individual SIP trunks and the SIP Trunk Application Setup.

A trunk is what the gateway checks with OPTIONS: a target (FQDN or IP, port,
transport), how TLS is verified, optional digest credentials and the check interval.
The *SIP Trunk Application Setup* (the vendor's Voice Gateway page) names a primary PBX,
an optional secondary PBX, one border gateway (MBG) and an optional teleworker FQDN;
saving it derives the two trunks the vendor creates, PBX <-> MBG and MBG <-> cloud
platform (``derive_trunks``). Every front door (page, CLI, cloud) validates through
these models, so the errors are the same everywhere and name the field.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, Field, ValidationError, model_validator

from clgwd.config.types import AbsolutePath, HostName, Port, StrictModel, _check_host_name
from clgwd.errors import ClgwdError

Transport = Literal["udp", "tcp", "tls"]
PbxFamily = Literal["mivb", "mx-one", "mv5000", "mvo400", "other"]
Origin = Literal["manual", "app_setup"]
DEFAULT_PORTS: Final = {"udp": 5060, "tcp": 5060, "tls": 5061}
APP_SETUP_PBX_TRUNK: Final = "app-pbx-mbg"
APP_SETUP_CLOUD_TRUNK: Final = "app-mbg-cloud"
MIN_INTERVAL: Final = 1.0
MAX_INTERVAL: Final = 3600.0
MAX_TIMEOUT: Final = 60.0


class InvalidTrunk(ClgwdError):
    code = "invalid_trunk"
    http_status = 422


def _check_target(value: str) -> str:
    """An IPv4/IPv6 address or a DNS name (the error says which forms are accepted)."""
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        pass
    try:
        return _check_host_name(value)
    except ValueError:
        raise ValueError("must be an IP address or a DNS name such as pbx1.example.com"
                         ) from None


Target = Annotated[str, AfterValidator(_check_target)]
TrunkName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
Interval = Annotated[float, Field(ge=MIN_INTERVAL, le=MAX_INTERVAL, strict=False)]
Timeout = Annotated[float, Field(ge=0.2, le=MAX_TIMEOUT, strict=False)]


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class TrunkSpec(StrictModel):
    """One trunk as stored (the password lives in the secret store, not here)."""

    name: TrunkName
    host: Target
    port: Port | None = None
    """Default 5060 (UDP/TCP) or 5061 (TLS)."""
    transport: Transport = "udp"
    secondary_host: Target | None = None
    """A resilient peer (the secondary PBX of a pair), same port and transport: checked
    when ``host`` fails; the trunk is up if either answers."""
    pbx: Annotated[str, Field(max_length=64)] = ""
    """Which PBX this trunk belongs to (the configured PBX or one of the setup's)."""
    pbx_family: PbxFamily = "other"
    server_name: HostName | None = None
    """TLS: the name the certificate must carry; default the host."""
    ca_file: AbsolutePath | None = None
    """TLS: a PEM bundle of the CAs to trust instead of the system store."""
    allow_self_signed: bool = False
    """TLS: accept a self-signed certificate (still checked for name and dates)."""
    username: Annotated[str, Field(max_length=128)] | None = None
    interval: Interval = 30.0
    timeout: Timeout = 5.0
    origin: Origin = "manual"

    @model_validator(mode="after")
    def _check(self) -> TrunkSpec:
        if self.timeout > self.interval:
            raise ValueError(f"timeout ({self.timeout:g} s) must not be longer than interval "
                             f"({self.interval:g} s)")
        if self.transport != "tls" and (self.server_name or self.ca_file
                                        or self.allow_self_signed):
            raise ValueError("server_name, ca_file and allow_self_signed apply to transport "
                             "tls only")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.transport]

    @property
    def tls_name(self) -> str:
        return self.server_name or self.host

    @property
    def target(self) -> str:
        return self._target(self.host)

    @property
    def secondary_target(self) -> str:
        return self._target(self.secondary_host or self.host)

    def _target(self, host: str) -> str:
        return f"[{host}]:{self.effective_port}" if ":" in host else \
            f"{host}:{self.effective_port}"


class TrunkInput(TrunkSpec):
    """A trunk as the front doors send it: the spec plus a write-only password."""

    password: Annotated[str, Field(max_length=256)] | None = None
    """Digest password; stored encrypted, never returned. Omitted on an edit = keep."""

    @model_validator(mode="after")
    def _credentials(self) -> TrunkInput:
        if self.password and not self.username:
            raise ValueError("username: must be set when a password is given")
        return self

    def spec(self) -> TrunkSpec:
        return TrunkSpec.model_validate(self.model_dump(exclude={"password"}))


class Endpoint(StrictModel):
    """A PBX or border gateway in the application setup."""

    name: Annotated[str, Field(min_length=1, max_length=64)]
    host: Target
    port: Port | None = None
    transport: Transport = "tcp"
    server_name: HostName | None = None
    ca_file: AbsolutePath | None = None
    allow_self_signed: bool = False


class AppSetup(StrictModel):
    """The SIP Trunk Application Setup (vendor: Voice Gateway)."""

    primary_pbx: Endpoint
    secondary_pbx: Endpoint | None = None
    pbx_family: PbxFamily = "mivb"
    mbg: Endpoint
    teleworker_fqdn: HostName | None = None
    interval: Interval = 30.0
    timeout: Timeout = 5.0


def derive_trunks(setup: AppSetup) -> list[TrunkSpec]:
    """The two trunks saving the setup creates: PBX <-> MBG (checked at the primary
    PBX, then at the secondary PBX of a resilient pair when the primary fails; the
    secondary uses the primary's port and transport) and MBG <-> cloud platform (checked
    at the MBG, the end the cloud calls)."""
    common: dict[str, Any] = {"interval": setup.interval, "timeout": setup.timeout,
                              "origin": "app_setup", "pbx": setup.primary_pbx.name,
                              "pbx_family": setup.pbx_family}
    out = []
    secondary = setup.secondary_pbx.host if setup.secondary_pbx else None
    for name, end, other in ((APP_SETUP_PBX_TRUNK, setup.primary_pbx, secondary),
                             (APP_SETUP_CLOUD_TRUNK, setup.mbg, None)):
        tls = end.transport == "tls"
        out.append(TrunkSpec(
            name=name, host=end.host, port=end.port, transport=end.transport,
            secondary_host=other, server_name=end.server_name if tls else None,
            ca_file=end.ca_file if tls else None,
            allow_self_signed=end.allow_self_signed and tls, **common))
    return out


def validation_message(err: ValidationError, prefix: str = "") -> str:
    """Pydantic's errors as ``field: problem`` lines a technician can act on."""
    lines = []
    for issue in err.errors():
        loc = ".".join(str(p) for p in issue["loc"] if p not in {"function-after"})
        msg = str(issue["msg"]).removeprefix("Value error, ")
        path = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "trunk"
        lines.append(f"{path}: {msg}")
    return "; ".join(lines)


def parse_trunk(data: Mapping[str, Any], defaults: Mapping[str, Any]) -> TrunkInput:
    """Validate one trunk from a front door; ``defaults`` fill omitted keys."""
    if not isinstance(data, Mapping):
        raise InvalidTrunk("trunk: must be an object")
    try:
        return TrunkInput.model_validate({**defaults, **data})
    except ValidationError as err:
        raise InvalidTrunk(validation_message(err)) from None


def parse_app_setup(data: Any) -> AppSetup:
    if not isinstance(data, Mapping):
        raise InvalidTrunk("app_setup: must be an object")
    try:
        return AppSetup.model_validate(data)
    except ValidationError as err:
        raise InvalidTrunk(validation_message(err, "app_setup.")) from None
