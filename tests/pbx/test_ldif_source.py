"""LDIF source (MiVB IDS export): RFC 2849 parsing and the preset attribute maps."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest

from clgwd.config.pbx import LdapSettings
from clgwd.pbx.ldapmap import AttributeMap, entries_to_read
from clgwd.pbx.ldif_source import LdifSource, parse_ldif
from clgwd.pbx.model import SourceDataError

GUID = uuid.UUID("12345678-1234-5678-9abc-def012345678")
BJORN_B64 = base64.b64encode("Bj\u00f6rn".encode()).decode()
IDS_EXPORT = (
    "version: 1\n"
    "# exported by IDS Data Management\n"
    "dn: CN=Ann Lee,OU=Users,DC=corp,DC=test\n"
    "objectClass: user\n"
    f"objectGUID:: {base64.b64encode(GUID.bytes_le).decode()}\n"
    "givenName: Ann\nsn: Lee\ntelephoneNumber: 2001\nmail: ANN@corp.test\n"
    "department: Sales\nphysicalDeliveryOfficeName: Ottawa\nemployeeType: Agent\n"
    "\n"
    "dn: CN=Bj\u00f6rn,OU=Users,DC=corp,DC=test\n"
    f"givenName:: {BJORN_B64}\n"
    "objectGUID:: " + base64.b64encode(uuid.uuid4().bytes_le).decode() + "\n"
    "sn: Lon\n g-Name\n"
    "\n"
    "dn: CN=NoGuid,OU=Users,DC=corp,DC=test\ngivenName: No\n\n"
    "dn: CN=Bad,OU=Users,DC=corp,DC=test\nchangetype: delete\n"
)


def test_ids_export_maps_with_the_mivb_preset() -> None:
    """objectGUID (binary, base64) becomes the usual GUID text; IDS fields map."""
    entries, problems = parse_ldif(IDS_EXPORT.encode())
    users, more = entries_to_read(entries, AttributeMap.from_settings(
        LdapSettings(preset="mivb_ids")))
    ann = users[0]
    assert ann.source_key == str(GUID)
    assert (ann.extension, ann.email, ann.department, ann.location, ann.groups) == (
        "2001", "ann@corp.test", "Sales", "Ottawa", ("Agent",))
    assert users[1].first_name == "Bj\u00f6rn"
    assert users[1].last_name == "Long-Name"  # folded line
    assert [p.reason for p in problems] == ["change records are not a directory export"]
    assert "no objectguid value" in more[0].reason


async def test_file_source_reads_in_a_thread(tmp_path: Path) -> None:
    """LdifSource reads the file off the event loop and maps with the configured preset."""
    path = tmp_path / "IDSManagedUsersWithNoDomain_20250101.ldf"
    path.write_bytes(IDS_EXPORT.encode())
    read = await LdifSource(path, LdapSettings(preset="mivb_ids")).read_users()
    assert len(read.users) == 2 and len(read.problems) == 2


def test_custom_map_for_a_mivoice_5000_directory() -> None:
    """A custom map (attr1.. fields) reads a site-specific schema."""
    ldif = b"dn: cn=x,o=m5000\nattr1: 42\ncn: X Y\nattr2: 3001\nattr3: x@y.test\n"
    entries, _ = parse_ldif(ldif)
    settings = LdapSettings(preset="custom", attributes={
        "source_key": "attr1", "extension": "attr2", "email": "attr3", "display_name": "cn"})
    users, _ = entries_to_read(entries, AttributeMap.from_settings(settings))
    assert (users[0].source_key, users[0].extension, users[0].display_name) == (
        "42", "3001", "X Y")


async def test_file_without_records_is_a_data_error_blank_file_is_empty(
        tmp_path: Path) -> None:
    """Comments or stray text but no record: "holds no records"; only blank lines: an
    empty read (the engine then applies its empty-read rule)."""
    path = tmp_path / "export.ldif"
    source = LdifSource(path, LdapSettings(preset="mivb_ids"))
    path.write_bytes(b"# exported by IDS\n\n# nothing else\n")
    with pytest.raises(SourceDataError, match="holds no records"):
        await source.read_users()
    path.write_bytes(b"\n  \n\n")
    read = await source.read_users()
    assert read.users == [] and read.problems == []
