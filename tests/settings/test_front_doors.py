"""Every front door reports the one rule's effective value and source; no write is lost.

The sync component (``pbx.*``, ``sync.schedule.*``) and the system component
(``config.get``/``config.set``) share one router and store, with a reload that does
what the daemon's does for them; the offline preview reads the same store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from clgwd.cli.sync_offline import _effective_pbx
from clgwd.commands import CallerRefused, CommandContext, CommandRouter
from clgwd.config import ClgwdConfig, load_config
from clgwd.errors import ClgwdError
from clgwd.settings import SettingOverridden
from clgwd.store import EventFilter, Store
from clgwd.sync.component import SyncService
from clgwd.system import DaemonHooks, SystemComponent
from clgwd.system.configedit import public_view

PAGE = CommandContext("local:web:admin")
CLOUD = CommandContext("cloud")
FILE_PBX = ("pbx: {type: ldap, name: File PBX, host: 192.0.2.7, read_timeout: 33,"
            " ldap: {base_dn: 'dc=file'}}\n")
PAGE_PBX = {"type": "ldap", "name": "HQ", "address": "127.0.0.1", "port": 1389,
            "username": "cn=ro", "password": "pw-from-page", "options": {"base_dn": "dc=page"}}


@dataclass
class Gateway:
    path: Path
    config: ClgwdConfig
    store: Store
    router: CommandRouter
    sync: SyncService

    async def call(self, method: str, params: dict[str, Any] | None = None,
                   ctx: CommandContext = PAGE) -> Any:
        return await self.router.call(method, params or {}, ctx)

    async def reload(self) -> dict[str, Any]:
        """What the daemon's reload does for these components."""
        new = await asyncio.to_thread(load_config, self.path)
        await self.sync.apply_config(new)
        self.config = new
        return {"applied": True, "errors": []}

    async def setting(self, key: str) -> dict[str, Any]:
        [entry] = (await self.call("config.get", {"keys": [key]}, CLOUD))["settings"]
        assert entry["key"] == key
        return entry  # type: ignore[no-any-return]

    async def file(self) -> dict[str, Any]:
        text = await asyncio.to_thread(self.path.read_text)
        return yaml.safe_load(text)  # type: ignore[no-any-return]


MakeGateway = Callable[[str], contextlib.AbstractAsyncContextManager[Gateway]]


@pytest.fixture
def gateway(tmp_path: Path) -> MakeGateway:
    @contextlib.asynccontextmanager
    async def _make(extra: str) -> AsyncIterator[Gateway]:
        path = tmp_path / "clgwd.yaml"
        await asyncio.to_thread((tmp_path / "state").mkdir)
        await asyncio.to_thread(path.write_text,
                                f"state: {{dir: {tmp_path / 'state'}}}\n{extra}")
        config = await asyncio.to_thread(load_config, path)
        router = CommandRouter()
        async with Store(config) as store:
            gw = Gateway(path, config, store, router, SyncService(config, store, router))
            hooks = DaemonHooks(config=lambda: gw.config, config_path=path,
                                reload=gw.reload, restart=lambda why: None)
            async with gw.sync, SystemComponent(store, router, hooks):
                yield gw

    return _make


async def test_cloud_config_set_pbx_host_after_page_saved_pbx_is_refused(
        gateway: MakeGateway) -> None:
    """The bug this rule fixes: the cloud's pbx.host, written to the file and silently
    overridden by the page's saved PBX, is now refused naming the key and the command;
    the file, the effective PBX and the history stay as they were."""
    async with gateway(FILE_PBX) as gw:
        await gw.call("pbx.set", PAGE_PBX)
        with pytest.raises(SettingOverridden) as caught:
            await gw.call("config.set", {"patch": {"pbx": {"host": "198.51.100.4"}}}, CLOUD)
        assert caught.value.code == "setting_overridden" and caught.value.http_status == 409
        assert caught.value.message.startswith(
            "pbx.host: saved from the page by local:web:admin, which wins over the config file")
        assert "pbx.set" in caught.value.message
        assert (await gw.file())["pbx"]["host"] == "192.0.2.7"
        assert gw.sync._pbx.host == "127.0.0.1"
        entry = await gw.setting("pbx.host")
        assert (entry["value"], entry["source"], entry["set_by"]) == (
            "127.0.0.1", "page", "local:web:admin")
        events = await gw.store.history.query(EventFilter(asset="Gateway configuration"))
        assert events == []


async def test_cloud_config_set_of_a_key_the_page_does_not_own_still_applies(
        gateway: MakeGateway) -> None:
    """With page-saved PBX settings, a PBX key the page does not show (read_timeout)
    is still the file's: the cloud's write applies and reports ``cloud``."""
    async with gateway(FILE_PBX) as gw:
        await gw.call("pbx.set", PAGE_PBX)
        answer = await gw.call("config.set", {"patch": {"pbx": {"read_timeout": 45}}}, CLOUD)
        assert answer == {"applied": True, "changed": ["pbx.read_timeout"]}
        assert gw.sync._pbx.read_timeout == 45 and gw.sync._pbx.host == "127.0.0.1"
        entry = await gw.setting("pbx.read_timeout")
        assert (entry["value"], entry["source"], entry["set_by"]) == (45, "cloud", "cloud")


async def test_cloud_config_set_pbx_host_without_page_settings_applies(
        gateway: MakeGateway) -> None:
    """Nothing saved on the page: the cloud's pbx.host goes to the file, the sync uses it,
    and config.get and pbx.get both say it came from the cloud."""
    async with gateway(FILE_PBX) as gw:
        assert (await gw.setting("pbx.host"))["source"] == "file"
        await gw.call("config.set", {"patch": {"pbx": {"host": "198.51.100.4"}}}, CLOUD)
        assert (await gw.file())["pbx"]["host"] == "198.51.100.4"
        assert gw.sync._pbx.host == "198.51.100.4"
        entry = await gw.setting("pbx.host")
        assert (entry["value"], entry["source"], entry["set_by"]) == (
            "198.51.100.4", "cloud", "cloud")
        view = await gw.call("pbx.get")
        by_key = {e["key"]: e for e in view["settings"]}
        assert by_key["pbx.host"]["source"] == "cloud"
        assert by_key["pbx.ldap.base_dn"]["source"] == "file"
        assert by_key["pbx.port"]["source"] == "default"
        assert (await gw.setting("pbx.ldap.page_size"))["source"] == "default"


async def test_page_pbx_set_is_reported_as_page_by_every_front_door(
        gateway: MakeGateway) -> None:
    """After pbx.set, pbx.get and config.get show the page's values with source page;
    the password only as "set"."""
    async with gateway(FILE_PBX) as gw:
        view = await gw.call("pbx.set", PAGE_PBX)
        by_key = {e["key"]: e for e in view["settings"]}
        assert {k: by_key[k]["source"] for k in ("pbx.host", "pbx.password",
                                                 "pbx.ldap.base_dn")} == dict.fromkeys(
            ("pbx.host", "pbx.password", "pbx.ldap.base_dn"), "page")
        assert by_key["pbx.password"]["value"] == "set"
        assert (await gw.setting("pbx.read_timeout"))["source"] == "file"
        answer = await gw.call("config.get", {}, CLOUD)
        assert answer["config"]["pbx"]["host"] == "127.0.0.1"
        assert "pw-from-page" not in str(answer) and "pw-from-page" not in str(view)
        assert (await gw.setting("pbx.ldap.base_dn"))["value"] == "dc=page"


async def test_interval_saved_on_the_page_refuses_the_file_and_takes_the_cloud_command(
        gateway: MakeGateway) -> None:
    """A saved interval wins over the file: config.set of it is refused naming
    sync.schedule.set; the cloud's sync.schedule.set applies and reports ``cloud``."""
    async with gateway("sync: {interval_minutes: 20}\n") as gw:
        assert (await gw.setting("sync.interval_minutes"))["source"] == "file"
        await gw.call("sync.schedule.set", {"interval_minutes": 30})
        with pytest.raises(SettingOverridden, match=r"^sync\.interval_minutes: saved from "
                                                     r"the page.*sync\.schedule\.set"):
            await gw.call("config.set", {"patch": {"sync": {"interval_minutes": 45}}}, CLOUD)
        assert (await gw.file())["sync"]["interval_minutes"] == 20
        answer = await gw.call("sync.schedule.set", {"interval_minutes": 15}, CLOUD)
        assert answer["interval_minutes"] == 15
        assert answer["settings"][0]["source"] == "cloud"
        entry = await gw.setting("sync.interval_minutes")
        assert (entry["value"], entry["source"], entry["set_by"]) == (15, "cloud", "cloud")
        assert gw.sync.interval_minutes == 15


async def test_config_get_names_an_unknown_key(gateway: MakeGateway) -> None:
    """Asking config.get for a key that does not exist says so, naming it."""
    from clgwd.system.errors import InvalidParams

    async with gateway("") as gw:
        with pytest.raises(InvalidParams, match="pbx.hots"):
            await gw.call("config.get", {"keys": ["pbx.hots"]}, CLOUD)


async def test_offline_preview_and_daemon_agree(gateway: MakeGateway) -> None:
    """The offline preview's PBX, the daemon's sync and config.get resolve the same
    effective settings, before and after the page and the cloud changed them."""
    async with gateway(FILE_PBX) as gw:
        for change in (None, ("pbx.set", PAGE_PBX, PAGE),
                       ("config.set", {"patch": {"pbx": {"read_timeout": 50}}}, CLOUD)):
            if change is not None:
                await gw.call(change[0], change[1], change[2])
            async with Store(gw.config, read_only=True) as reader:
                offline = await _effective_pbx(reader, gw.config)
            assert offline == gw.sync._pbx
            shown = (await gw.call("config.get", {}, CLOUD))["config"]["pbx"]
            expected = public_view(gw.config.model_copy(update={"pbx": offline}))["pbx"]
            assert shown == expected
        assert (offline.host, offline.read_timeout) == ("127.0.0.1", 50)


async def test_forget_returns_saved_keys_to_the_file_and_lifts_the_refusal(
        gateway: MakeGateway) -> None:
    """settings.forget drops the page's PBX (and its password): the file's values apply
    at once, the cloud's config.set of pbx.host applies again, one history event."""
    async with gateway(FILE_PBX + "sync: {interval_minutes: 20}\n") as gw:
        await gw.call("pbx.set", PAGE_PBX)
        await gw.call("sync.schedule.set", {"interval_minutes": 30})
        answer = await gw.call("settings.forget", {"keys": ["pbx"]}, CommandContext(
            "local:cli"))
        assert answer["forgotten"] == ["pbx"]
        assert {e["key"]: e["source"] for e in answer["settings"]}["pbx.host"] == "file"
        assert gw.sync._pbx.host == "192.0.2.7" and gw.sync._pbx.password is None
        assert await gw.store.secrets.get("sync.pbx_password") is None
        assert (await gw.setting("sync.interval_minutes"))["source"] == "page"
        await gw.call("config.set", {"patch": {"pbx": {"host": "198.51.100.4"}}}, CLOUD)
        assert gw.sync._pbx.host == "198.51.100.4"
        again = await gw.call("settings.forget", {"keys": ["pbx", "sync.interval_minutes"]})
        assert again["forgotten"] == ["sync.interval_minutes"]
        assert gw.sync.interval_minutes == 20
        events = await gw.store.history.query(EventFilter(asset="Saved settings"))
        assert [(e.actor, e.subject) for e in events][::-1] == [
            ("local:cli", "pbx"), ("local:web:admin", "sync.interval_minutes")]


@pytest.mark.parametrize("params", [{}, {"keys": []}, {"keys": ["pbx.host"]},
                                    {"keys": "pbx"}, {"keys": ["pbx"], "all": True}])
async def test_forget_names_what_it_takes(gateway: MakeGateway,
                                          params: dict[str, Any]) -> None:
    """Only the saved groups (pbx, sync.interval_minutes) can be forgotten."""
    async with gateway("") as gw:
        with pytest.raises(ClgwdError, match=r"^keys: .*pbx, sync\.interval_minutes"):
            await gw.call("settings.forget", params)


async def test_the_cloud_may_not_forget_settings_saved_on_site(gateway: MakeGateway) -> None:
    """Clearing the PBX saved on site is a decision taken at the gateway."""
    async with gateway(FILE_PBX) as gw:
        await gw.call("pbx.set", PAGE_PBX)
        with pytest.raises(CallerRefused, match="settings.forget"):
            await gw.call("settings.forget", {"keys": ["pbx"]}, CLOUD)
        assert gw.sync._pbx.host == "127.0.0.1"


async def test_the_page_proxy_is_reported_with_its_source_by_config_get(
        gateway: MakeGateway) -> None:
    """cloud.proxy.set (the page's Cloud step) is reported by config.get like the other
    saved settings: the page's proxy with source page (its password only as "set");
    "no proxy" also turns HTTPS_PROXY off; "default" hands back to the file."""
    from clgwd.link.proxy import ProxySettings

    async with gateway("cloud: {proxy: {host: 192.0.2.80, port: 8080}}\n") as gw:
        ProxySettings(gw.config.cloud, gw.store, environ={}).register(gw.router)
        assert (await gw.setting("cloud.proxy.host"))["source"] == "file"
        await gw.call("cloud.proxy.set", {"mode": "manual", "host": "192.0.2.81",
                                          "port": 3129, "username": "gw",
                                          "password": "proxy-secret"})
        host, password = (await gw.setting("cloud.proxy.host"),
                          await gw.setting("cloud.proxy.password"))
        assert (host["value"], host["source"]) == ("192.0.2.81", "page")
        assert (password["value"], password["source"]) == ("set", "page")
        answer = await gw.call("config.get", {}, CLOUD)
        assert answer["config"]["cloud"]["proxy"]["port"] == 3129
        assert "proxy-secret" not in str(answer)
        await gw.call("cloud.proxy.set", {"mode": "none"})
        proxy, environment = (await gw.setting("cloud.proxy"),
                              await gw.setting("cloud.proxy_from_environment"))
        assert (proxy["value"], proxy["source"]) == (None, "page")
        assert (environment["value"], environment["source"]) == (False, "page")
        await gw.call("cloud.proxy.set", {"mode": "default"})
        host = await gw.setting("cloud.proxy.host")
        assert (host["value"], host["source"]) == ("192.0.2.80", "file")
