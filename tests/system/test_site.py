"""Gateway information (site) is owned by the system component: site.get / site.set."""

from __future__ import annotations

import pytest

from clgwd.commands import CallerRefused, CommandContext, CommandRouter
from clgwd.store import EventFilter
from clgwd.system.errors import InvalidParams
from clgwd.system.site import SITE_SETTING
from tests.system.conftest import MakeRig

SITE = {"site_name": "Ballad Industries", "address": "2301 Express Avenue", "city": "Ottawa",
        "country": "Canada", "province": "Ontario", "postal_code": "K1A 0B1"}


async def test_site_set_saves_records_and_answers_site_get(make_rig: MakeRig) -> None:
    """site.set stores the site, records what changed, and site.get answers it."""
    async with make_rig() as rig:
        assert await rig.call("site.get", actor="local:web:admin") == {"configured": False,
                                                                        "site": None}
        answer = await rig.call("site.set", SITE, actor="local:web:admin")
        assert answer == {"configured": True, "site": SITE, "changed": sorted(SITE)}
        again = await rig.call("site.set", {**SITE, "city": "Kanata"}, actor="local:cli")
        assert again["changed"] == ["city"]
        assert (await rig.call("site.get"))["site"]["city"] == "Kanata"
        assert (await rig.store.settings.get(SITE_SETTING))["city"] == "Kanata"
        events = await rig.store.history.query(EventFilter(asset="Site"))
        assert [(e.action.value, e.actor, e.properties_changed) for e in events][::-1] == [
            ("Create", "local:web:admin", sorted(SITE)), ("Edit", "local:cli", ["city"])]


@pytest.mark.parametrize(("params", "field"), [
    ({**SITE, "site_name": ""}, "site_name"), ({**SITE, "postal_code": "%%"}, "postal_code"),
    ({**SITE, "city": "a\x00b"}, "city"), ({**SITE, "extra": "x"}, "extra"),
    ({k: v for k, v in SITE.items() if k != "country"}, "country"),
])
async def test_site_set_refuses_bad_fields_naming_them(make_rig: MakeRig,
                                                       params: dict[str, str],
                                                       field: str) -> None:
    """Every front door gets the same checks; the error names the field."""
    async with make_rig() as rig:
        with pytest.raises(InvalidParams, match=field):
            await rig.call("site.set", params, actor="local:cli")
        assert await rig.store.settings.get(SITE_SETTING) is None


async def test_the_cloud_may_not_fetch_call_trace_files() -> None:
    """trace.file (a capture's path for the page's download) is refused to the cloud."""
    with pytest.raises(CallerRefused, match="trace.file"):
        await CommandRouter().call("trace.file", {"file": "x"}, CommandContext("cloud"))
