"""PBX types the page offers, with their type-specific fields.

The ids are the sync part's ``pbx.type`` values (``clgwd/config/pbx.py``) and the field
names its ``pbx.set`` option keys (``clgwd.sync.page.OPTION_PATHS``; a test keeps
the two equal). The vendor's own types that no connector implements yet are listed as
not available, so the technician sees they exist and that this gateway cannot do them
yet (never a form that silently does nothing). ``network`` false: a file on the
gateway, so the page hides address, port and credentials.
"""

from __future__ import annotations

from typing import Any, Final

_LDAP_PRESETS: Final = [
    {"value": "openldap", "label": "OpenLDAP"},
    {"value": "active_directory", "label": "Active Directory"},
    {"value": "mivb_ids", "label": "MiVoice Business IDS"},
]
_LDAP_SECURITY: Final = [
    {"value": "none", "label": "None"},
    {"value": "starttls", "label": "StartTLS"},
    {"value": "ldaps", "label": "LDAPS"},
]
_PATH: Final = {"name": "path", "label": "File path on the gateway (absolute)",
                "required": True}

PBX_TYPES: Final[tuple[dict[str, Any], ...]] = (
    {"id": "connect_mysql", "label": "MiVoice Connect / ShoreTel", "available": True,
     "network": True, "default_port": 4308,
     "fields": [{"name": "database", "label": "Database name (default shoreware)",
                 "required": False}]},
    {"id": "ldap", "label": "LDAP / Active Directory", "available": True,
     "network": True, "default_port": 389,
     "fields": [{"name": "base_dn", "label": "Base DN", "required": True},
                {"name": "user_filter", "label": "User filter", "required": False},
                {"name": "preset", "label": "Directory kind", "required": False,
                 "choices": _LDAP_PRESETS},
                {"name": "security", "label": "Connection security", "required": False,
                 "choices": _LDAP_SECURITY}]},
    {"id": "ldif", "label": "MiVoice Business IDS export (LDIF file)", "available": True,
     "network": False, "default_port": None,
     "fields": [_PATH, {"name": "preset", "label": "Attribute map", "required": False,
                        "choices": _LDAP_PRESETS}]},
    {"id": "csv", "label": "CSV file", "available": True, "network": False,
     "default_port": None, "fields": [_PATH]},
    {"id": "freepbx_mysql", "label": "FreePBX / Asterisk", "available": True,
     "network": True, "default_port": 3306,
     "fields": [{"name": "database", "label": "Database name (default asterisk)",
                 "required": False}]},
    {"id": "mivoice_office_400", "label": "MiVoice Office 400", "available": False,
     "network": True, "default_port": 443, "fields": []},
    {"id": "mivoice_business", "label": "MiVoice Business (native)", "available": False,
     "network": True, "default_port": 443, "fields": []},
    {"id": "mx_one", "label": "MX-ONE", "available": False, "network": True,
     "default_port": 443, "fields": []},
)


def pbx_type(type_id: str) -> dict[str, Any] | None:
    return next((t for t in PBX_TYPES if t["id"] == type_id), None)
