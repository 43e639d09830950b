"""Files of the registry of designated organisations and individuals: read and written.

- CSV: `name,aliases,category,source,designated_on` (aliases separated by `|`, any script), with
  optional columns `kind` (organisation|individual), `alias_kinds` and `alias_langs` (`|`-separated,
  one per alias) and `reference`.
- JSON: a list of objects with the same fields; aliases a list of strings or of
  {"text", "kind", "lang"}.
- UN Security Council consolidated list XML (`CONSOLIDATED_LIST`): source "UNSC", category from
  `UN_LIST_TYPE`. Read with ElementTree after refusing DOCTYPE and ENTITY declarations.

A bad row refuses the whole file, naming its line, entry or element.
"""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from datetime import date
from enum import StrEnum
from typing import Any

from firebreak.store.orgs import Alias, OrgEntry, OrgListInvalid, check_entry

MAX_BYTES = 64 * 1024 * 1024
"""The largest registry file read (the UN consolidated list is a few MB)."""
CSV_COLUMNS = ("name", "aliases", "category", "source", "designated_on")
CSV_EXTRA = ("kind", "alias_kinds", "alias_langs", "reference")
UN_SOURCE = "UNSC"
_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class OrgFormat(StrEnum):
    CSV = "csv"
    JSON = "json"
    UN_XML = "un-xml"


def guess_org_format(file_name: str, data: bytes) -> OrgFormat:
    """The format of a registry file, from its extension, else its first characters."""
    lower = file_name.lower()
    if lower.endswith(".csv"):
        return OrgFormat.CSV
    if lower.endswith(".json"):
        return OrgFormat.JSON
    if lower.endswith(".xml"):
        return OrgFormat.UN_XML
    start = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start in (b"[", b"{"):
        return OrgFormat.JSON
    if start == b"<":
        return OrgFormat.UN_XML
    return OrgFormat.CSV


def parse_orgs(
    data: bytes, fmt: OrgFormat, file_name: str, source: str | None = None
) -> list[OrgEntry]:
    """The entries of a registry file; `source` names the designation source of entries that
    do not name one (and of every entry, when given). Raises OrgListInvalid."""
    if len(data) > MAX_BYTES:
        raise OrgListInvalid(file_name, f"larger than {MAX_BYTES} bytes")
    if fmt is OrgFormat.UN_XML:
        return parse_un_xml(data, file_name, source)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OrgListInvalid(file_name, f"not UTF-8 ({exc})") from None
    if fmt is OrgFormat.JSON:
        return parse_json(text, file_name, source)
    return parse_csv(text, file_name, source)


def _date(value: str, where: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise OrgListInvalid(where, f"designated_on {value!r} is not a date (YYYY-MM-DD)") from None


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in value.split("|")] if value and value.strip() else []


def parse_csv(text: str, file_name: str, source: str | None = None) -> list[OrgEntry]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise OrgListInvalid(f"{file_name}:1", f"missing columns: {', '.join(missing)}")
    unknown = [c for c in header if c not in CSV_COLUMNS + CSV_EXTRA]
    if unknown:
        raise OrgListInvalid(f"{file_name}:1", f"unknown columns: {', '.join(unknown)}")
    reader.fieldnames = header
    entries = []
    try:
        for row in reader:
            where = f"{file_name}:{reader.line_num}"
            if None in row:
                raise OrgListInvalid(where, "more fields than columns")
            texts = _split(row.get("aliases"))
            kinds = _split(row.get("alias_kinds")) or ["name"] * len(texts)
            langs = _split(row.get("alias_langs")) or [""] * len(texts)
            if len(kinds) != len(texts) or len(langs) != len(texts):
                raise OrgListInvalid(where, "alias_kinds/alias_langs do not match the aliases")
            entry = OrgEntry(
                name=(row.get("name") or "").strip(),
                kind=(row.get("kind") or "").strip() or "organisation",
                source=source or (row.get("source") or "").strip(),
                category=(row.get("category") or "").strip(),
                designated_on=_date(row.get("designated_on") or "", where),
                aliases=tuple(
                    Alias(t, k, lang or None)
                    for t, k, lang in zip(texts, kinds, langs, strict=True)
                ),
                reference=(row.get("reference") or "").strip(),
            )
            check_entry(entry, where)
            entries.append(entry)
    except csv.Error as exc:
        raise OrgListInvalid(f"{file_name}:{reader.line_num}", f"bad CSV ({exc})") from None
    return entries


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise OrgListInvalid(where, f"{key} is not a string")
    return value.strip()


def _json_alias(value: object, where: str) -> Alias:
    if isinstance(value, str):
        return Alias(value.strip())
    if isinstance(value, dict):
        lang = value.get("lang")
        if lang is not None and not isinstance(lang, str):
            raise OrgListInvalid(where, "alias lang is not a string")
        return Alias(
            _text(value, "text", where), _text(value, "kind", where) or "name", lang or None
        )
    raise OrgListInvalid(where, "an alias is neither a string nor an object")


def parse_json(text: str, file_name: str, source: str | None = None) -> list[OrgEntry]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OrgListInvalid(f"{file_name}:{exc.lineno}", f"bad JSON ({exc.msg})") from None
    if isinstance(doc, dict) and isinstance(doc.get("entries"), list):
        doc = doc["entries"]  # `orgs list --json`: {"version": N, "entries": [...]}
    if not isinstance(doc, list):
        raise OrgListInvalid(file_name, "not a list of entries")
    entries = []
    for n, obj in enumerate(doc, 1):
        where = f"{file_name}: entry {n}"
        if not isinstance(obj, dict):
            raise OrgListInvalid(where, "not an object")
        aliases = obj.get("aliases") or []
        if not isinstance(aliases, list):
            raise OrgListInvalid(where, "aliases is not a list")
        entry = OrgEntry(
            name=_text(obj, "name", where),
            kind=_text(obj, "kind", where) or "organisation",
            source=source or _text(obj, "source", where),
            category=_text(obj, "category", where),
            designated_on=_date(_text(obj, "designated_on", where), where),
            aliases=tuple(_json_alias(a, where) for a in aliases),
            reference=_text(obj, "reference", where),
        )
        check_entry(entry, where)
        entries.append(entry)
    return entries


def _child(element: ET.Element, tag: str) -> str:
    found = element.find(tag)
    return (found.text or "").strip() if found is not None else ""


def parse_un_xml(data: bytes, file_name: str, source: str | None = None) -> list[OrgEntry]:
    """The UN Security Council consolidated list. Declarations (DOCTYPE, ENTITY) are refused
    before parsing, so no entity is ever expanded."""
    if len(data) > MAX_BYTES:
        raise OrgListInvalid(file_name, f"larger than {MAX_BYTES} bytes")
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OrgListInvalid(file_name, f"not UTF-8 ({exc})") from None
    if _DECLARATION.search(data):
        raise OrgListInvalid(file_name, "DOCTYPE or ENTITY declarations are refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise OrgListInvalid(f"{file_name}:{exc.position[0]}", f"bad XML ({exc})") from None
    if root.tag != "CONSOLIDATED_LIST":
        raise OrgListInvalid(file_name, f"root element is {root.tag}, not CONSOLIDATED_LIST")
    entries = []
    for kind, path, alias_tag in (
        ("individual", "INDIVIDUALS/INDIVIDUAL", "INDIVIDUAL_ALIAS"),
        ("organisation", "ENTITIES/ENTITY", "ENTITY_ALIAS"),
    ):
        for n, element in enumerate(root.iterfind(path), 1):
            dataid = _child(element, "DATAID")
            where = f"{file_name}: {element.tag} #{n}" + (f" (DATAID {dataid})" if dataid else "")
            parts = ["FIRST_NAME", "SECOND_NAME", "THIRD_NAME", "FOURTH_NAME"]
            name = " ".join(
                p
                for p in (_child(element, t) for t in parts[: 4 if kind == "individual" else 1])
                if p
            )
            aliases: list[Alias] = []
            original = _child(element, "NAME_ORIGINAL_SCRIPT")
            if original:
                aliases.append(Alias(original, "transliteration"))
            for alias in element.iterfind(alias_tag):
                text = _child(alias, "ALIAS_NAME")
                if text and all(a.text != text for a in aliases):
                    aliases.append(Alias(text, "name"))
            entry = OrgEntry(
                name=name,
                kind=kind,
                source=source or UN_SOURCE,
                category=_child(element, "UN_LIST_TYPE"),
                designated_on=_date(_child(element, "LISTED_ON"), where),
                aliases=tuple(aliases),
                reference=_child(element, "REFERENCE_NUMBER"),
            )
            check_entry(entry, where)
            entries.append(entry)
    return entries


def write_csv(entries: Iterable[OrgEntry]) -> str:
    """CSV with the contract's columns first, then kind, alias_kinds, alias_langs, reference.
    An alias holding `|` cannot be written in this format (JSON can)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS + CSV_EXTRA)
    for e in entries:
        if any("|" in a.text for a in e.aliases):
            raise OrgListInvalid(e.name, "an alias holds '|', which CSV cannot carry: use JSON")
        writer.writerow(
            [
                e.name,
                "|".join(a.text for a in e.aliases),
                e.category,
                e.source,
                e.designated_on.isoformat() if e.designated_on else "",
                e.kind,
                "|".join(a.kind for a in e.aliases),
                "|".join(a.lang or "" for a in e.aliases),
                e.reference,
            ]
        )
    return buffer.getvalue()


def write_json(entries: Sequence[OrgEntry]) -> str:
    return json.dumps([e.to_json() for e in entries], ensure_ascii=False, indent=2) + "\n"
