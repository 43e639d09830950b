"""The registry of designated organisations and individuals: imports, versions, formats, CLI."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import pytest

from firebreak.exchange.orgs import (
    OrgFormat,
    guess_org_format,
    parse_orgs,
    write_csv,
    write_json,
)
from firebreak.service import Firebreak
from firebreak.store.orgs import Alias, OrgEntry, OrgListInvalid, Orgs

DATA = Path(__file__).parent / "data"
UN_SAMPLE = DATA / "un_consolidated_sample.xml"

CSV_TEXT = (
    "name,aliases,category,source,designated_on\n"
    "Example Movement,EM|حركة المثال|Движение Пример|Victory or nothing|1488,"
    "terrorist organisation,platform policy,2020-05-01\n"
    'Sample Group,"SG|Группа, Образец",violent extremist,EU,\n'
)


def _import(orgs: Orgs, data: bytes, fmt: OrgFormat, name: str, source: str | None = None):  # type: ignore[no-untyped-def]
    entries = parse_orgs(data, fmt, name, source)
    return orgs.import_entries(
        entries,
        actor="tester",
        file_name=name,
        sha256=hashlib.sha256(data).hexdigest(),
        sources=[source] if source else None,
    )


def _entries(orgs: Orgs) -> list[OrgEntry]:
    return [o.entry for o in orgs.list()]


def test_csv_import_keeps_every_script_and_round_trips(fb: Firebreak) -> None:
    orgs = fb.store.orgs
    assert orgs.current_version() == 0
    outcome = _import(orgs, CSV_TEXT.encode(), OrgFormat.CSV, "list.csv")
    assert outcome.version.version == 1 and outcome.added == 2
    movement = next(e for e in _entries(orgs) if e.name == "Example Movement")
    assert [a.text for a in movement.aliases] == [
        "EM",
        "حركة المثال",
        "Движение Пример",
        "Victory or nothing",
        "1488",
    ]
    assert movement.designated_on == date(2020, 5, 1)
    assert movement.kind == "organisation" and movement.source == "platform policy"
    group = next(e for e in _entries(orgs) if e.name == "Sample Group")
    assert [a.text for a in group.aliases] == ["SG", "Группа, Образец"]
    assert group.designated_on is None

    before = _entries(orgs)
    exported = write_csv(before).encode()
    assert exported.startswith(b"name,aliases,category,source,designated_on")
    again = _import(orgs, exported, OrgFormat.CSV, "export.csv")
    assert (again.added, again.changed, again.removed, again.unchanged) == (0, 0, 0, 2)
    assert _entries(orgs) == before
    assert orgs.current_version() == 2
    assert parse_orgs(exported, OrgFormat.CSV, "export.csv") == before


def test_json_import_with_alias_kinds_round_trips(fb: Firebreak) -> None:
    doc = [
        {
            "name": "Example Person",
            "kind": "individual",
            "aliases": [
                {"text": "Абу Пример", "kind": "transliteration", "lang": "ru"},
                {"text": "أبو مثال", "kind": "transliteration", "lang": "ar"},
                "The Example",
                {"text": "☩", "kind": "code"},
            ],
            "category": "terrorist individual",
            "source": "national list",
            "designated_on": "2019-09-09",
        }
    ]
    orgs = fb.store.orgs
    _import(orgs, json.dumps(doc, ensure_ascii=False).encode(), OrgFormat.JSON, "list.json")
    (entry,) = _entries(orgs)
    assert entry.kind == "individual"
    assert entry.aliases == (
        Alias("Абу Пример", "transliteration", "ru"),
        Alias("أبو مثال", "transliteration", "ar"),
        Alias("The Example", "name", None),
        Alias("☩", "code", None),
    )
    for text, fmt in ((write_json([entry]), OrgFormat.JSON), (write_csv([entry]), OrgFormat.CSV)):
        assert parse_orgs(text.encode(), fmt, f"x.{fmt}") == [entry]


def test_un_xml_import(fb: Firebreak) -> None:
    orgs = fb.store.orgs
    data = UN_SAMPLE.read_bytes()
    assert guess_org_format("consolidated", data) is OrgFormat.UN_XML
    outcome = _import(orgs, data, OrgFormat.UN_XML, UN_SAMPLE.name)
    assert outcome.added == 3
    assert outcome.version.source == "UNSC"
    by_name = {e.name: e for e in _entries(orgs)}
    person = by_name["EXAMPLE PERSON AL-SAMPLE"]
    assert person.kind == "individual" and person.category == "Al-Qaida"
    assert person.reference == "QDi.901" and person.designated_on == date(2001, 1, 25)
    assert [a.text for a in person.aliases] == ["مثال شخص السامبل", "Abu Example"]
    front = by_name["EXAMPLE FRONT"]
    assert front.kind == "organisation"
    assert [a.text for a in front.aliases] == ["جبهة المثال", "Фронт Примера", "EF"]
    assert by_name["SAMPLE BRIGADES"].category == "DPRK"

    before = _entries(orgs)
    again = _import(orgs, write_csv(before).encode(), OrgFormat.CSV, "export.csv")
    assert again.unchanged == 3 and _entries(orgs) == before


def test_versions_record_source_and_sha256(fb: Firebreak) -> None:
    orgs = fb.store.orgs
    data = CSV_TEXT.encode()
    _import(orgs, data, OrgFormat.CSV, "list.csv")
    _import(orgs, UN_SAMPLE.read_bytes(), OrgFormat.UN_XML, UN_SAMPLE.name)
    newest, first = orgs.versions()
    assert (first.version, newest.version) == (1, 2)
    assert orgs.current_version() == 2
    assert first.sha256 == hashlib.sha256(data).hexdigest()
    assert first.file_name == "list.csv" and first.actor == "tester"
    assert first.source == "EU,platform policy" and first.entry_count == 2
    assert newest.source == "UNSC" and newest.entry_count == 3
    assert {o.version for o in orgs.list(source="UNSC")} == {2}
    assert {o.version for o in orgs.list(source="EU")} == {1}


def test_reimport_replaces_its_source_and_keeps_others(fb: Firebreak) -> None:
    orgs = fb.store.orgs
    _import(orgs, CSV_TEXT.encode(), OrgFormat.CSV, "list.csv")
    _import(orgs, UN_SAMPLE.read_bytes(), OrgFormat.UN_XML, UN_SAMPLE.name)
    updated = (
        UN_SAMPLE.read_text(encoding="utf-8")
        .replace(
            "<FIRST_NAME>SAMPLE BRIGADES</FIRST_NAME>", "<FIRST_NAME>NEW BRIGADES</FIRST_NAME>"
        )
        .replace("<ALIAS_NAME>EF</ALIAS_NAME>", "<ALIAS_NAME>E.F.</ALIAS_NAME>")
    )
    outcome = _import(orgs, updated.encode(), OrgFormat.UN_XML, "un2.xml")
    assert (outcome.added, outcome.changed, outcome.removed, outcome.unchanged) == (1, 1, 1, 1)
    un = {o.entry.name: o for o in orgs.list(source="UNSC")}
    assert set(un) == {"EXAMPLE PERSON AL-SAMPLE", "EXAMPLE FRONT", "NEW BRIGADES"}
    assert un["EXAMPLE FRONT"].version == 3 and un["EXAMPLE PERSON AL-SAMPLE"].version == 2
    assert "E.F." in [a.text for a in un["EXAMPLE FRONT"].entry.aliases]
    assert len(orgs.list(source="EU")) == 1 and len(orgs.list(source="platform policy")) == 1

    # --source: every entry is of that source, and an empty list empties only that source
    only = b"name,aliases,category,source,designated_on\nSolo,,,ignored,\n"
    _import(orgs, only, OrgFormat.CSV, "eu.csv", source="EU")
    assert [o.entry.name for o in orgs.list(source="EU")] == ["Solo"]
    _import(orgs, b"name,aliases,category,source,designated_on\n", OrgFormat.CSV, "e.csv", "EU")
    assert orgs.list(source="EU") == [] and len(orgs.list(source="UNSC")) == 3


def test_registry_on_postgresql(pg_fb: Firebreak) -> None:
    test_reimport_replaces_its_source_and_keeps_others(pg_fb)
    assert pg_fb.store.orgs.current_version() == 5


@pytest.mark.parametrize(
    ("data", "fmt", "where"),
    [
        (b"name,aliases,category,source\nA,,,EU\n", OrgFormat.CSV, "missing columns"),
        (CSV_TEXT.encode() + b"B,,x,EU,2020-13-40\n", OrgFormat.CSV, "list:4"),
        (CSV_TEXT.encode() + b",x,y,EU,\n", OrgFormat.CSV, "empty name"),
        (CSV_TEXT.encode() + b"C,,,,\n", OrgFormat.CSV, "no designation source"),
        (
            b"name,aliases,category,source,designated_on,kind\nA,,,EU,,group\n",
            OrgFormat.CSV,
            "kind 'group'",
        ),
        (
            b"name,aliases,category,source,designated_on,alias_kinds\nA,x|y,,EU,,name\n",
            OrgFormat.CSV,
            "do not match",
        ),
        (CSV_TEXT.encode() + CSV_TEXT.encode().split(b"\n")[1] + b"\n", OrgFormat.CSV, "twice"),
        (b'[{"name": "A", "source": "EU"}, {"name": 3}]', OrgFormat.JSON, "entry 2"),
        (
            b'[{"name": "A", "source": "EU", "aliases": [{"text": "x", "kind": "nick"}]}]',
            OrgFormat.JSON,
            "alias kind",
        ),
        (b'{"name": "A"}', OrgFormat.JSON, "not a list"),
        (b"[1, 2", OrgFormat.JSON, "bad JSON"),
        (
            b"<CONSOLIDATED_LIST><ENTITIES><ENTITY><FIRST_NAME/></ENTITY></ENTITIES>"
            b"</CONSOLIDATED_LIST>",
            OrgFormat.UN_XML,
            "ENTITY #1",
        ),
        (b"<OTHER/>", OrgFormat.UN_XML, "not CONSOLIDATED_LIST"),
        (b"<CONSOLIDATED_LIST>", OrgFormat.UN_XML, "bad XML"),
    ],
)
def test_malformed_input_imports_nothing(
    fb: Firebreak, data: bytes, fmt: OrgFormat, where: str
) -> None:
    orgs = fb.store.orgs
    with pytest.raises(OrgListInvalid, match=where):
        _import(orgs, data, fmt, "list")
    assert orgs.current_version() == 0 and orgs.list() == []


def test_xml_with_doctype_entity_is_refused(fb: Firebreak) -> None:
    bomb = (
        b'<?xml version="1.0"?>\n<!DOCTYPE CONSOLIDATED_LIST [\n'
        b'  <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">\n'
        b'  <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">\n]>\n'
        b"<CONSOLIDATED_LIST><ENTITIES><ENTITY><FIRST_NAME>&b;</FIRST_NAME>"
        b"</ENTITY></ENTITIES></CONSOLIDATED_LIST>"
    )
    with pytest.raises(OrgListInvalid, match="DOCTYPE or ENTITY"):
        _import(fb.store.orgs, bomb, OrgFormat.UN_XML, "bomb.xml")
    external = b'<!doctype x SYSTEM "file:///etc/passwd"><CONSOLIDATED_LIST/>'
    with pytest.raises(OrgListInvalid, match="DOCTYPE or ENTITY"):
        parse_orgs(external, OrgFormat.UN_XML, "x.xml")
    assert fb.store.orgs.current_version() == 0


def test_cli_import_list_export(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csv_file = tmp_path / "designated.csv"
    csv_file.write_text(CSV_TEXT, encoding="utf-8")
    result = cli("orgs", "import", csv_file)
    assert result.code == 0, result.stderr
    assert "registry version 1" in result.stdout and "2 entries" in result.stdout

    result = cli("orgs", "import", UN_SAMPLE)
    assert result.code == 0, result.stderr
    assert "registry version 2" in result.stdout

    result = cli("orgs", "list", "--json")
    assert result.code == 0, result.stderr
    listed = json.loads(result.stdout)
    assert listed["version"] == 2 and len(listed["entries"]) == 5
    texts = {a["text"] for e in listed["entries"] for a in e["aliases"]}
    assert {"حركة المثال", "Фронт Примера"} <= texts

    result = cli("orgs", "list")
    assert result.code == 0 and "registry version 2: 5 entries" in result.stdout

    result = cli("orgs", "export")
    assert result.code == 0, result.stderr
    assert "registry version 2" in result.stderr
    assert result.stdout.startswith("name,aliases,category,source,designated_on")
    exported = tmp_path / "export.csv"
    exported.write_text(result.stdout, encoding="utf-8")

    result = cli("orgs", "export", "--format", "json")
    assert result.code == 0 and len(json.loads(result.stdout)) == 5
    as_json = tmp_path / "export.json"
    as_json.write_text(result.stdout, encoding="utf-8")

    result = cli("orgs", "import", exported)
    assert result.code == 0, result.stderr
    assert "registry version 3" in result.stdout and "5 unchanged" in result.stdout
    result = cli("orgs", "import", as_json, "--format", "json")
    assert result.code == 0 and "5 unchanged" in result.stdout
    assert json.loads(cli("orgs", "list", "--json").stdout)["entries"] == listed["entries"]

    bad = tmp_path / "bad.csv"
    bad.write_text("name,aliases,category,source,designated_on\nX,,,EU,someday\n", "utf-8")
    result = cli("orgs", "import", bad)
    assert result.code != 0 and "bad.csv:2" in result.stderr
    assert json.loads(cli("orgs", "list", "--json").stdout)["version"] == 4
