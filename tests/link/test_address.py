"""The typed cloud address and CA (``clgwd.link.address``): parsing and the plan of one
enrollment (which address, which CA, whether a success saves them)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clgwd.config import parse_config
from clgwd.config.cloud import CloudConfig, SavedCloudAddress, check_cloud_url
from clgwd.link.address import (
    AddressRequest,
    InvalidCloudCa,
    InvalidCloudUrl,
    address_params,
    ca_pem_param,
    cloud_url_param,
    plan,
)
from clgwd.link.local import CloudNotConfigured
from tests.link.harness import other_ca_pem

FILE_URL = "https://cloud-a.example.com"
OTHER_URL = "https://cloud-b.example.com"
CA = other_ca_pem()


def _cloud(tmp_path: Path, url: str | None = FILE_URL) -> CloudConfig:
    cloud = f"cloud: {{url: '{url}', enrollment_ca_file: /etc/ca.pem}}\n" if url else ""
    return parse_config(f"state: {{dir: {tmp_path}}}\n{cloud}").cloud


@given(st.text(max_size=80))
def test_a_typed_address_is_refused_or_a_clean_https_base_url(text: str) -> None:
    """Whatever is typed: refused with invalid_cloud_url, or an https base URL with a
    host, no user or password, no path, that the config validator accepts unchanged."""
    try:
        url = cloud_url_param(text)
    except InvalidCloudUrl as err:
        assert err.message.startswith("cloud_url: ")
        return
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.hostname and "@" not in parts.netloc
    assert parts.path == "" and not parts.query and check_cloud_url(url) == url


@given(st.text(max_size=200) | st.text(max_size=50).map(
    lambda t: f"-----BEGIN CERTIFICATE-----\n{t}\n-----END CERTIFICATE-----"))
def test_a_pasted_ca_is_refused_unless_it_is_certificates(text: str) -> None:
    """Random text, or random text between certificate markers, is never accepted as a
    CA (and never raises anything but invalid_cloud_ca)."""
    with pytest.raises(InvalidCloudCa):
        ca_pem_param(text)


def test_a_pasted_ca_comes_back_as_clean_pem() -> None:
    """Spaces around the PEM are dropped; an empty or null CA means "none pasted"."""
    assert ca_pem_param(f"\n  {CA}  \n") == CA
    assert address_params({"cloud_ca_pem": "  "}) == AddressRequest()
    assert address_params({"cloud_url": " https://x.example.com/ "}) == AddressRequest(
        url="https://x.example.com")


def test_without_a_typed_address_the_file_applies_and_nothing_is_saved(
        tmp_path: Path) -> None:
    """Nothing typed: the file's address and CA file, as before this feature."""
    todo = plan(AddressRequest(), None, _cloud(tmp_path))
    assert (todo.url, todo.ca_pem, todo.ca_file, todo.save) == (
        FILE_URL, None, Path("/etc/ca.pem"), False)


def test_typing_the_files_own_address_saves_nothing(tmp_path: Path) -> None:
    """The prefilled file address sent back unchanged: same trust, nothing to save."""
    todo = plan(AddressRequest(url=FILE_URL), None, _cloud(tmp_path))
    assert (todo.ca_file, todo.save) == (Path("/etc/ca.pem"), False)


def test_another_address_uses_the_system_store_or_the_pasted_ca_and_is_saved(
        tmp_path: Path) -> None:
    """Another cloud than the file's: the file's CA file is not used for it (it would
    refuse a public certificate); a pasted CA is; either way a success saves it."""
    todo = plan(AddressRequest(url=OTHER_URL), None, _cloud(tmp_path))
    assert (todo.url, todo.ca_pem, todo.ca_file, todo.save) == (OTHER_URL, None, None, True)
    todo = plan(AddressRequest(url=OTHER_URL, ca_pem=CA), None, _cloud(tmp_path))
    assert (todo.ca_pem, todo.ca_file, todo.save) == (CA, None, True)


def test_the_saved_address_and_its_ca_are_reused_without_typing(tmp_path: Path) -> None:
    """Enrolling again (nothing typed, or the saved address prefilled): the saved
    address with its saved CA, and nothing new to save."""
    saved = SavedCloudAddress(OTHER_URL, CA, "local:web:admin", 1.0)
    for request in (AddressRequest(), AddressRequest(url=OTHER_URL)):
        todo = plan(request, saved, _cloud(tmp_path))
        assert (todo.url, todo.ca_pem, todo.ca_file, todo.save) == (OTHER_URL, CA, None, False)


def test_no_address_anywhere_says_where_to_type_it(tmp_path: Path) -> None:
    """No file address, none saved, none typed: the Cloud step's field is named."""
    with pytest.raises(CloudNotConfigured, match="Cloud step"):
        plan(AddressRequest(), None, _cloud(tmp_path, None))
