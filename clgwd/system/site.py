"""Gateway information (the vendor's "site": where the PBX physically is).

Owned by the system component (``site.get`` / ``site.set``), so the page, the CLI and
any other front door read and write it through the router; the web part keeps no
copy of its own. Stored as the state DB setting ``web.site`` (its name from when the
web part stored it, kept so existing gateways keep their site).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clgwd.config.loader import render_validation_error
from clgwd.store import Action, Event, Store
from clgwd.system.errors import InvalidParams

SITE_SETTING: Final = "web.site"
_NO_CONTROL: Final = r"^[^\x00-\x1f\x7f]*$"

Name = Annotated[str, Field(min_length=1, max_length=100, pattern=_NO_CONTROL)]
OptionalText = Annotated[str, Field(min_length=0, max_length=200, pattern=_NO_CONTROL)]


class SiteInfo(BaseModel):
    """Gateway Information: where the PBX physically is (vendor field names)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    site_name: Name
    address: OptionalText = ""
    city: Name
    country: Name
    province: Name
    postal_code: Annotated[str, Field(min_length=1, max_length=12,
                                      pattern=r"^[A-Za-z0-9][A-Za-z0-9 -]*$")]


def check_site(params: Mapping[str, Any]) -> dict[str, Any]:
    """``site.set`` params, validated; the error names each wrong field."""
    try:
        return SiteInfo.model_validate(dict(params)).model_dump()
    except ValidationError as err:
        raise InvalidParams("; ".join(str(i) for i in render_validation_error(err))) from None


class Site:
    """The stored site info, cached: this is its only writer."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cached: dict[str, Any] | None = None

    async def get(self) -> dict[str, Any] | None:
        if self._cached is None:
            self._cached = await self._store.settings.get(SITE_SETTING)
        return self._cached

    async def set(self, params: Mapping[str, Any], actor: str) -> dict[str, Any]:
        """Validate and save, with a history event naming what changed."""
        new = check_site(params)
        old = await self.get() or {}
        changed = sorted(k for k in new if old.get(k) != new[k])
        if changed:
            async with self._store.db.transaction() as tx:
                await self._store.settings.set_in(tx, SITE_SETTING, new)
                await self._store.history.record(tx, Event(
                    actor=actor, action=Action.EDIT if old else Action.CREATE,
                    asset="Site", subject=new["site_name"], properties_changed=changed,
                    core={k: new[k] for k in changed}))
            self._cached = new
        return {"configured": True, "site": new, "changed": changed}
