"""The gateway link against the reference cloud, both real, over TLS on loopback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clgwd.link.connection import LinkState
from tests.link.harness import enroll_gateway, gateway_config, refcloud, running_gateway, wait_for

pytestmark = pytest.mark.usefixtures("link_backend")  # both websocket backends


async def test_enrolled_gateway_comes_online_and_is_shown(tmp_path: Path) -> None:
    """After enrollment the link connects with mTLS, says hello, and the cloud lists it online."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        async with running_gateway(config) as gw:
            await gw.online()
            row = await cloud.store.gateway(gw.link.gateway_id or "")
            assert row is not None and row["online"] == 1
            assert gw.link.gateway_id in cloud.sessions


async def test_outbox_records_are_delivered_in_order_and_acked(tmp_path: Path) -> None:
    """Records queued before and after connecting arrive once, in seq order, and get acked."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        async with running_gateway(config) as gw:
            for i in range(5):
                await gw.enqueue("event", {"i": i})
            await gw.online()
            for i in range(5, 10):
                await gw.enqueue("event", {"i": i})
            await wait_for(lambda: _depth_zero(gw), what="outbox drained")
            rows = await cloud.store.fetchall(
                "SELECT seq, payload FROM records WHERE kind = 'event' ORDER BY seq")
            assert [json.loads(r["payload"])["i"] for r in rows] == list(range(10))


async def _depth_zero(gw: Any) -> bool:
    return bool(await gw.store.outbox.depth() == 0)


async def test_user_changes_build_the_cloud_user_table(tmp_path: Path) -> None:
    """user.change create/update/delete records maintain the cloud's users table."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        async with running_gateway(config) as gw:
            def change(op: str, key: str, name: str | None = None) -> dict[str, Any]:
                rec: dict[str, Any] = {"op": op, "source_id": "mx1", "source_key": key,
                                       "fingerprint": f"fp-{name}", "changed": ["name"]}
                if name is not None:
                    rec["user"] = {"name": name}
                return rec
            await gw.enqueue("user.change", change("create", "100", "Ann"))
            await gw.enqueue("user.change", change("create", "101", "Bob"))
            await gw.enqueue("user.change", change("update", "100", "Anne"))
            await gw.enqueue("user.change", change("delete", "101"))
            await gw.online()
            await wait_for(lambda: _depth_zero(gw), what="outbox drained")
            users = await cloud.store.fetchall("SELECT source_key, user FROM users")
            assert [(u["source_key"], json.loads(u["user"])) for u in users] == [
                ("100", {"name": "Anne"})]


async def test_not_enrolled_link_stays_idle(tmp_path: Path) -> None:
    """Without enrollment the link idles in NOT_ENROLLED (a running, not failing, component)."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        async with running_gateway(config) as gw:
            await wait_for(lambda: gw.link.state == LinkState.NOT_ENROLLED)
            assert gw.link.tracker.current.state.value == "running"
            assert "not enrolled" in gw.link.tracker.current.message
            assert cloud.connection_attempts == 0


async def test_no_cloud_url_means_not_configured(tmp_path: Path) -> None:
    """An empty cloud section keeps the link idle in NOT_CONFIGURED."""
    config = gateway_config(tmp_path, None, None)
    async with running_gateway(config) as gw:
        await wait_for(lambda: gw.link.state == LinkState.NOT_CONFIGURED)
        assert gw.link.tracker.current.state.value == "running"


async def test_enrolling_while_running_connects_without_restart(tmp_path: Path) -> None:
    """The link notices enrollment files written by `clgwd enroll` and connects."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        async with running_gateway(config) as gw:
            await wait_for(lambda: gw.link.state == LinkState.NOT_ENROLLED)
            await enroll_gateway(config, cloud)
            await gw.online()


async def test_recreated_outbox_is_not_mistaken_for_duplicates(tmp_path: Path) -> None:
    """After the state database is recreated (seqs restart at 1) new records still arrive."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        async with running_gateway(config) as gw:
            for i in range(5):
                await gw.enqueue("event", {"life": 1, "i": i})
            await gw.online()
            await wait_for(lambda: _depth_zero(gw))
        for name in ("state.db", "state.db-wal", "state.db-shm"):
            (config.state.dir / name).unlink(missing_ok=True)
        async with running_gateway(config) as gw:
            for i in range(3):
                await gw.enqueue("event", {"life": 2, "i": i})
            await gw.online()
            await wait_for(lambda: _depth_zero(gw))
        rows = await cloud.store.fetchall(
            "SELECT payload FROM records WHERE kind = 'event' ORDER BY received_at")
        lives = [json.loads(r["payload"])["life"] for r in rows]
        assert lives == [1] * 5 + [2] * 3


@pytest.mark.slow
async def test_outbox_near_full_raises_and_clears_alert(tmp_path: Path) -> None:
    """At 80 % of outbox_max_records an alert is raised; it clears once delivered."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        config = config.model_copy(update={"state": config.state.model_copy(
            update={"outbox_max_records": 100})})
        await enroll_gateway(config, cloud)
        await cloud.stop()
        async with running_gateway(config) as gw:
            for i in range(85):
                await gw.enqueue("event", {"i": i})
            await wait_for(lambda: _alert_active(gw, "outbox_near_full"), limit=15)
            await cloud.start()
            await gw.online()
            await wait_for(lambda: _depth_zero(gw))
            await wait_for(lambda: _alert_cleared(gw, "outbox_near_full"), limit=15)


async def _alert_active(gw: Any, code: str) -> bool:
    return code in {a.code for a in await gw.store.alerts.active()}


async def _alert_cleared(gw: Any, code: str) -> bool:
    return not await _alert_active(gw, code)


async def test_a_backlog_of_large_records_is_pushed_within_the_message_limit(
        tmp_path: Path) -> None:
    """40 records of ~100 KB (4 MB, above the 1 MiB message limit) drain in several
    pushes instead of one oversized message the cloud would close the connection on."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        async with running_gateway(config) as gw:
            async with gw.store.db.transaction() as tx:  # one commit: a real backlog
                for i in range(40):
                    await gw.store.outbox.enqueue(tx, "inventory",
                                                  {"i": i, "pad": "ü" * 50_000})
            await gw.online()
            await wait_for(lambda: _depth_zero(gw), what="outbox drained")
            rows = await cloud.store.fetchall(
                "SELECT payload FROM records WHERE kind = 'inventory' ORDER BY seq")
            assert [json.loads(r["payload"])["i"] for r in rows] == list(range(40))


async def test_partial_ack_marks_only_what_the_cloud_acknowledged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cloud acking only the first record of each batch gets the rest sent again:
    the gateway marks delivered exactly the acknowledged seq, never the whole batch."""
    pushes: list[list[int]] = []
    async with refcloud(tmp_path / "cloud") as cloud:
        apply_push = cloud.store.apply_push

        async def ack_first_only(gateway_id: str, records: list[Any]) -> int:
            await apply_push(gateway_id, records)
            pushes.append([r["seq"] for r in records])
            return int(records[0]["seq"])

        monkeypatch.setattr(cloud.store, "apply_push", ack_first_only)
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        async with running_gateway(config) as gw:
            for i in range(3):
                await gw.enqueue("event", {"i": i})
            await wait_for(lambda: _depth_zero(gw), what="outbox drained")
    assert len(pushes[0]) >= 2, pushes
    assert len(pushes) >= 2 and pushes[1][0] == pushes[0][0] + 1, pushes


async def test_over_ack_never_marks_records_not_yet_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cloud acking a seq beyond the batch it got (batch_size 2 of 5 queued) does not
    make the gateway drop the records it has not sent: all five reach the cloud."""
    async with refcloud(tmp_path / "cloud") as cloud:
        apply_push = cloud.store.apply_push

        async def over_ack(gateway_id: str, records: list[Any]) -> int:
            return await apply_push(gateway_id, records) + 1000

        monkeypatch.setattr(cloud.store, "apply_push", over_ack)
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file, batch_size=2)
        await enroll_gateway(config, cloud)
        async with running_gateway(config) as gw:
            for i in range(5):
                await gw.enqueue("event", {"i": i})
            await wait_for(lambda: _depth_zero(gw), what="outbox drained")
        rows = await cloud.store.fetchall(
            "SELECT payload FROM records WHERE kind = 'event' ORDER BY seq")
        assert [json.loads(r["payload"])["i"] for r in rows] == list(range(5))
