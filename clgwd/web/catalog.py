"""PBX types the page offers, with their type-specific fields.

The connectors come from the PBX sync part; the vendor's own types that no connector
implements yet are listed as not available, so the technician sees they exist and that
this gateway cannot do them yet (never a form that silently does nothing).
"""

from __future__ import annotations

from typing import Any, Final

PBX_TYPES: Final[tuple[dict[str, Any], ...]] = (
    {"id": "mivoice_connect", "label": "MiVoice Connect / ShoreTel", "available": True,
     "default_port": 4308, "fields": []},
    {"id": "ldap", "label": "LDAP / Active Directory", "available": True,
     "default_port": 389,
     "fields": [{"name": "base_dn", "label": "Base DN", "required": True},
                {"name": "user_filter", "label": "User filter", "required": False}]},
    {"id": "mivb_ids", "label": "MiVoice Business (IDS LDIF)", "available": True,
     "default_port": 389,
     "fields": [{"name": "base_dn", "label": "Base DN", "required": True}]},
    {"id": "csv", "label": "CSV file", "available": True, "default_port": 443,
     "fields": [{"name": "path", "label": "File path or URL", "required": True}]},
    {"id": "freepbx", "label": "FreePBX / Asterisk", "available": True, "default_port": 3306,
     "fields": [{"name": "database", "label": "Database name", "required": True}]},
    {"id": "mivoice_office_400", "label": "MiVoice Office 400", "available": False,
     "default_port": 443, "fields": []},
    {"id": "mivoice_business", "label": "MiVoice Business (native)", "available": False,
     "default_port": 443, "fields": []},
    {"id": "mx_one", "label": "MX-ONE", "available": False, "default_port": 443,
     "fields": []},
)


def pbx_type(type_id: str) -> dict[str, Any] | None:
    return next((t for t in PBX_TYPES if t["id"] == type_id), None)
