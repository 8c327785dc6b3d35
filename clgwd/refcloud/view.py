"""The reference cloud's read-only web view: plain HTML tables, every value escaped.

The gateway page is built for large directories: the server reads one page of users
(``USERS_PER_PAGE``) and the newest records only, so it stays fast with 20,000 users.
Values are text (``_text``), never JSON dumps, except the raw inventory document kept
behind a "Document" toggle.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from html import escape
from typing import Any, Final
from urllib.parse import urlsplit

USERS_PER_PAGE: Final = 50
RECORDS_SHOWN: Final = 200
_TEXT_LIMIT: Final = 300

_STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
          ".on{color:#070}.off{color:#a00}pre{margin:0;white-space:pre-wrap}"
          "nav.pages a,nav.pages span{margin-right:1em}")


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}"
            f"</title><style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>"
            f"{body}</body></html>")


def _when(ts: float | None) -> str:
    if ts is None:
        return "never"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """Cells are HTML already (escaped by the caller)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text(value: object) -> str:
    """A value as short plain text (not escaped): lists joined with commas, objects as
    ``key: value`` pairs, long text cut at ``_TEXT_LIMIT`` characters."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list | tuple):
        text = ", ".join(_text(v) for v in value)
    elif isinstance(value, dict):
        text = "; ".join(f"{k}: {_text(v)}" for k, v in value.items())
    else:
        text = str(value)
    return text if len(text) <= _TEXT_LIMIT else text[:_TEXT_LIMIT - 1] + "…"


def _fields(text: str | None) -> str:
    """A stored JSON object as a two-column table (escaped), or ``none``."""
    if not text:
        return "none"
    data = json.loads(text)
    if not isinstance(data, dict):
        return escape(_text(data))
    return _table(["Field", "Value"], [[escape(str(k)), escape(_text(v))]
                                       for k, v in data.items()])


def _online(row: sqlite3.Row) -> str:
    if row["revoked"]:
        return "<span class='off'>revoked</span>"
    return "<span class='on'>online</span>" if row["online"] else "<span class='off'>offline</span>"


def render_index(gateways: list[sqlite3.Row]) -> str:
    rows = [[f"<a href='/gateways/{escape(g['id'])}'>{escape(g['id'])}</a>",
             escape(g["account_id"]), _online(g), escape(_when(g["last_seen"])),
             escape(g["version"] or ""), str(g["last_seq"])] for g in gateways]
    table = _table(["Gateway", "Account", "State", "Last seen", "Version", "Records"], rows)
    return _page("clgwd reference cloud", f"<h2>Gateways</h2>{table}")


def _json_cell(text: str | None) -> str:
    if not text:
        return ""
    # ensure_ascii=False: the page is UTF-8, so "Zoë" is shown as typed, not "Zo\\u00eb".
    pretty = json.dumps(json.loads(text), indent=1, sort_keys=True, ensure_ascii=False)
    return f"<pre>{escape(pretty)}</pre>"


def render_gateway(gw: sqlite3.Row, users: list[sqlite3.Row], records: list[sqlite3.Row],
                   inventory: sqlite3.Row | None, commands: list[sqlite3.Row], *,
                   tunnels: list[dict[str, Any]] | None = None,
                   launches: list[dict[str, Any]] | None = None,
                   user_total: int | None = None, page: int = 1) -> str:
    """``users`` is one page (``page``, 1-based) of ``user_total`` users, by source key."""
    total = len(users) if user_total is None else user_total
    summary = _table(["Account", "State", "Last seen", "Version", "Cert expires"], [[
        escape(gw["account_id"]), _online(gw), escape(_when(gw["last_seen"])),
        escape(gw["version"] or ""), escape(_when(gw["cert_not_after"]))]])
    parts: list[str] = [summary, "<h2>Components</h2>", _status(gw["status"]),
                        "<h2>Last sync</h2>", _fields(gw["sync_result"]),
                        f"<h2 id='users'>Synced users ({total})</h2>",
                        _pages(str(gw["id"]), page, total), _users(users),
                        "<h2>Tunnels</h2>", _tunnels(tunnels or [], launches or []),
                        "<h2>Inventory</h2>",
                        _inventory(gw, inventory, tunnels or [], launches or []),
                        f"<h2>Events, alerts and audit (newest {RECORDS_SHOWN} records,"
                        " newest first)</h2>", _records(records),
                        "<h2>Commands</h2>", _commands(commands)]
    return _page(f"Gateway {gw['id']}", "".join(parts))


def _status(text: str | None) -> str:
    if not text:
        return "no status received yet"
    status: dict[str, Any] = json.loads(text)
    comps = status.get("components", {})
    rows = [[escape(str(name)), escape(str(c.get("state"))), escape(str(c.get("message")))]
            for name, c in comps.items() if isinstance(c, dict)]
    return f"<p>Reported {escape(_when(status.get('at')))}</p>" + _table(
        ["Component", "State", "Message"], rows)


def _tunnels(tunnels: list[dict[str, Any]], launches: list[dict[str, Any]]) -> str:
    """The gateway's last reported tunnel list, with the Launch URL where one runs."""
    urls = {str(launch.get("tunnel")): str(launch.get("url")) for launch in launches}
    if not tunnels:
        return ("<p>no tunnel list yet (start a tunnel or send tunnel.list through the "
                "admin API)</p>")
    rows = []
    for t in tunnels:
        name = str(t.get("name"))
        url = urls.get(name)
        launch = f'<a href="{escape(url)}">{escape(url)}</a>' if url else ""
        rows.append([escape(name), escape(f"{t.get('host')} {t.get('ports')}"),
                     escape(str(t.get("status"))), escape(_when(_number(t.get("expires_at")))),
                     escape(str(t.get("streams"))),
                     escape(f"{t.get('bytes_from_cloud')} / {t.get('bytes_to_cloud')}"),
                     escape(_when(_number(t.get("last_use")))), launch])
    return _table(["Tunnel", "Target", "Status", "Expires", "Streams",
                   "Bytes in / out", "Last use", "Launch"], rows)


_PLATFORM_COLUMNS = ["Account", "Host", "Platform type", "Platform name", "Application types",
                     "System family", "Licence", "Version", "SWA status", "Platform ID",
                     "Portal"]
_APPLICATION_COLUMNS = ["Platform", "Application type", "Name", "Version", "Portal"]


def _inventory(gw: sqlite3.Row, inventory: sqlite3.Row | None, tunnels: list[dict[str, Any]],
               launches: list[dict[str, Any]]) -> str:
    """System Inventory: the vendor's Platforms and Applications tables, then the raw
    document. A platform whose admin UI is a tunnel's target gets a Launch link."""
    if inventory is None:
        return "none"
    doc: dict[str, Any] = json.loads(inventory["payload"])
    raw_host = doc.get("host")
    host: dict[str, Any] = raw_host if isinstance(raw_host, dict) else {}
    apps = [a for a in doc.get("applications", []) if isinstance(a, dict)]
    own_types = sorted({str(a.get("type")) for a in apps if a.get("platform") in (
        None, host.get("name")) and a.get("type") == "cloudlink-gateway"})
    rows = [[escape(gw["account_id"]), escape(str(host.get("name", ""))),
             escape(str(host.get("platform_type", ""))),
             escape(str(host.get("platform_name", ""))), escape(", ".join(own_types)),
             escape(str(host.get("system_family", ""))), "", escape(str(host.get("os", ""))),
             "", escape(gw["id"]), ""]]
    for p in doc.get("platforms", []):
        if not isinstance(p, dict):
            continue
        state = "" if p.get("reachable") else " (unreachable: " + str(p.get("error")) + ")"
        rows.append([escape(gw["account_id"]), escape(str(p.get("host") or p.get("address"))),
                     escape(str(p.get("platform_type") or "") + state),
                     escape(str(p.get("name", ""))), "",
                     escape(str(p.get("system_family") or "")), "",
                     escape(str(p.get("description") or "")[:80]), "",
                     escape(f"{gw['id']}/{p.get('name')}"),
                     _launch_cell(str(p.get("admin_url") or ""), tunnels, launches)])
    app_rows = [[escape(str(a.get("platform") or host.get("name", ""))),
                 escape(str(a.get("type", ""))), escape(str(a.get("name", ""))),
                 escape(str(a.get("version") or "")), ""] for a in apps]
    received = escape(_when(inventory["updated_at"]))
    collected = escape(_when(_number(doc.get("collected_at"))))
    submitted = f"<p>Inventory Report Submission: received {received}, collected {collected}</p>"
    return (submitted + "<h3>Platforms</h3>" + _table(_PLATFORM_COLUMNS, rows)
            + "<h3>Applications</h3>" + _table(_APPLICATION_COLUMNS, app_rows)
            + "<details><summary>Document</summary>" + _json_cell(inventory["payload"])
            + "</details>")


def _port_in(port: int, ports: object) -> bool:
    for item in ports if isinstance(ports, list) else []:
        if isinstance(item, int) and item == port:
            return True
        if isinstance(item, str) and "-" in item:
            low, _, high = item.partition("-")
            if low.isdigit() and high.isdigit() and int(low) <= port <= int(high):
                return True
    return False


def _launch_cell(admin_url: str, tunnels: list[dict[str, Any]],
                 launches: list[dict[str, Any]]) -> str:
    """Launch for a platform whose admin URL host:port is a tunnel's allow-listed target."""
    if not admin_url:
        return ""
    parts = urlsplit(admin_url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return ""
    urls = {str(launch.get("tunnel")): str(launch.get("url")) for launch in launches}
    for t in tunnels:
        if str(t.get("host")) == parts.hostname and _port_in(port, t.get("ports")):
            name = str(t.get("name"))
            url = urls.get(name)
            if url:
                return f'<a href="{escape(url)}">Launch</a>'
            return f"Launch: start tunnel {escape(name)}"
    return ""


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def page_count(total: int) -> int:
    return max(1, -(-total // USERS_PER_PAGE))


def _pages(gateway_id: str, page: int, total: int) -> str:
    """Previous / "page N of M" / next links (``?page=N#users``)."""
    last = page_count(total)
    base = f"/gateways/{escape(gateway_id)}?page="
    prev = (f"<a href='{base}{page - 1}#users' rel='prev'>Previous {USERS_PER_PAGE}</a>"
            if page > 1 else "")
    nxt = (f"<a href='{base}{page + 1}#users' rel='next'>Next {USERS_PER_PAGE}</a>"
           if page < last else "")
    first = (page - 1) * USERS_PER_PAGE + 1 if total else 0
    shown = f"<span>Users {first}-{min(total, page * USERS_PER_PAGE)} of {total}, " \
            f"page {page} of {last}</span>"
    return f"<nav class='pages' aria-label='User pages'>{prev}{shown}{nxt}</nav>"


_USER_COLUMNS: Final = ("extension", "first_name", "last_name", "display_name", "email",
                        "client_username", "dids")


def _users(users: list[sqlite3.Row]) -> str:
    rows = []
    for u in users:
        user = json.loads(u["user"])
        data: dict[str, Any] = user if isinstance(user, dict) else {"user": user}
        name = " ".join(str(data.get(k) or "") for k in ("first_name", "last_name")).strip()
        other = {k: v for k, v in data.items() if k not in _USER_COLUMNS and v not in
                 ("", [], {}, None)}
        rows.append([escape(_text(data.get("extension"))),
                     escape(name or _text(data.get("display_name"))),
                     escape(_text(data.get("email"))), escape(_text(data.get("client_username"))),
                     escape(_text(data.get("dids"))), escape(u["source_key"]),
                     escape(u["source_id"]), escape(_text(other)),
                     escape(_when(u["updated_at"]))])
    return _table(["Extension", "Name", "Email", "Client username", "DIDs", "Key", "Source",
                   "Other fields", "Updated"], rows)


def _record_rows(record: sqlite3.Row) -> list[list[str]]:
    """One row per event (an ``event.batch`` holds several), alert, audit or change."""
    payload = json.loads(record["payload"])
    data: dict[str, Any] = payload if isinstance(payload, dict) else {"value": payload}
    kind = str(record["kind"])
    seq = str(record["seq"])
    if kind == "event.batch":
        events = [e for e in data.get("events", []) if isinstance(e, dict)]
        return [row for e in events for row in _event_row(seq, "event", e, record)]
    if kind == "event":
        return _event_row(seq, kind, data, record)
    if kind == "alert":
        what = f"{_text(data.get('severity'))} {_text(data.get('code'))}"
        return [[seq, escape(kind), escape(_when(record["created_at"])), "",
                 escape(what), escape(_text(data.get("message"))),
                 escape(_text({k: v for k, v in data.items()
                               if k not in ("severity", "code", "message")}))]]
    if kind == "user.change":
        return [[seq, escape(kind), escape(_when(record["created_at"])), "",
                 escape(_text(data.get("op"))), escape(_text(data.get("source_key"))),
                 escape(_text(data.get("changed")))]]
    return [[seq, escape(kind), escape(_when(record["created_at"])),
             escape(_text(data.get("actor"))), "", "", escape(_text(data))]]


def _event_row(seq: str, kind: str, event: dict[str, Any],
               record: sqlite3.Row) -> list[list[str]]:
    at = _number(event.get("at"))
    what = f"{_text(event.get('action'))} {_text(event.get('asset'))}".strip()
    changed = _text(event.get("properties_changed"))
    return [[seq, escape(kind), escape(_when(at if at is not None else record["created_at"])),
             escape(_text(event.get("actor"))), escape(what),
             escape(_text(event.get("subject"))),
             escape(f"changed: {changed}" if changed else "")]]


def _records(records: list[sqlite3.Row]) -> str:
    rows = [row for r in records for row in _record_rows(r)]
    return _table(["Seq", "Kind", "At", "Actor", "What", "Subject", "Details"], rows)


def _commands(commands: list[sqlite3.Row]) -> str:
    rows = [[str(c["id"]), escape(c["method"]), escape(_text(_loads(c["params"]))),
             escape(_when(c["sent_at"])), escape(_text(_loads(c["outcome"])))]
            for c in commands]
    return _table(["#", "Method", "Params", "Sent", "Outcome"], rows)


def _loads(text: str | None) -> object:
    return json.loads(text) if text else None
