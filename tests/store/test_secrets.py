"""Secrets at rest: AES-GCM under a 0600 key file; never readable in logs or repr."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from clgwd.config import Secret, parse_config
from clgwd.errors import StateError
from clgwd.store import Store
from clgwd.store.secretbox import SecretBox, load_or_create_key


async def test_secrets_round_trip_and_are_encrypted_at_rest(state_dir: Path) -> None:
    async with Store(parse_config(f"state: {{dir: {state_dir}}}")) as store:
        await store.secrets.put("pbx.password", Secret("s3cret-pbx-pass"))
        got = await store.secrets.get("pbx.password")
        assert got is not None and got.reveal() == "s3cret-pbx-pass"
        assert await store.secrets.is_set("pbx.password")
        assert await store.secrets.get("missing") is None
    raw = b"".join(p.read_bytes() for p in state_dir.iterdir() if p.is_file())
    assert b"s3cret-pbx-pass" not in raw


def test_key_file_is_created_0600(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    key = load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    load_or_create_key(path)
    path.chmod(0o644)
    with pytest.raises(StateError, match="readable by others"):
        load_or_create_key(path)


def test_ciphertext_is_bound_to_its_name(tmp_path: Path) -> None:
    box = SecretBox(load_or_create_key(tmp_path / "k"))
    token = box.encrypt("pbx.password", Secret("value-1234"))
    assert box.decrypt("pbx.password", token).reveal() == "value-1234"
    with pytest.raises(StateError, match="cannot be decrypted"):
        box.decrypt("cloud.token", token)
    assert box.encrypt("pbx.password", Secret("value-1234")) != token


def test_secret_never_appears_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Formatting a Secret in any way logs ***; the scrubber catches leaked plaintext."""
    from clgwd.logsetup import SecretScrubber

    secret = Secret("pa55-word-xyz")
    logger = logging.getLogger("clgwd.test")
    handler_filter = SecretScrubber()
    caplog.handler.addFilter(handler_filter)
    with caplog.at_level(logging.INFO, logger="clgwd.test"):
        logger.info("secret %s repr %r fmt %s", secret, secret, f"{secret}")
        logger.info("oops raw %s", secret.reveal())
        try:
            raise ValueError(f"bad password {secret.reveal()}")
        except ValueError:
            logger.exception("failed")
    text = caplog.text
    assert "pa55-word-xyz" not in text
    assert text.count("***") >= 4
