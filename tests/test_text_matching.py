"""Lexical alias matching: obfuscated forms are caught with spans in the original text."""

from __future__ import annotations

import json

import pytest

from firebreak.text import AliasHit, AliasMatcher, Form, bench_matcher, normalise
from firebreak.text.normalise import confusable_map, form_of

ENTRIES = [
    ("Islamic State", "IS"),
    ("Islamic State", "ISIS"),
    ("Islamic State", "Daesh"),
    ("Islamic State", "ИГИЛ"),
    ("Islamic State", "داعش"),
    ("Hamas", "Hamas"),
    ("Al-Shabaab", "Al-Shabaab"),
    ("Taliban", "Taliban"),
]


@pytest.fixture(scope="module")
def matcher() -> AliasMatcher:
    return AliasMatcher(ENTRIES)


def _only(hits: list[AliasHit]) -> AliasHit:
    assert len(hits) == 1, hits
    return hits[0]


# (text, org, alias, the obfuscated substring that must be the reported span)
HELD_OUT = [
    # compatibility forms
    ("they praise ＩＳＩＳ daily", "Islamic State", "ISIS", "ＩＳＩＳ"),
    ("𝐓𝐚𝐥𝐢𝐛𝐚𝐧 returns", "Taliban", "Taliban", "𝐓𝐚𝐥𝐢𝐛𝐚𝐧"),
    # Cyrillic / Greek look-alikes
    ("support ІЅІЅ now", "Islamic State", "ISIS", "ІЅІЅ"),
    ("go Ηаmаѕ go", "Hamas", "Hamas", "Ηаmаѕ"),
    ("Таlіbаn fighters", "Taliban", "Taliban", "Таlіbаn"),
    # leetspeak
    ("j01n 1$1$ today", "Islamic State", "ISIS", "1$1$"),
    ("h4m45 forever", "Hamas", "Hamas", "h4m45"),
    ("d@35h", "Islamic State", "Daesh", "d@35h"),
    # zero-width characters inside the word
    ("the I\u200bS\u200dI\u2060S flag", "Islamic State", "ISIS", "I\u200bS\u200dI\u2060S"),
    ("Ta\u00adli\ufeffban", "Taliban", "Taliban", "Ta\u00adli\ufeffban"),
    # combining marks and precomposed diacritics
    ("Ḩámàš", "Hamas", "Hamas", "Ḩámàš"),
    (
        "I\u0308S\u0301I\u0300S\u0323 rising",
        "Islamic State",
        "ISIS",
        "I\u0308S\u0301I\u0300S\u0323",
    ),
    # separators between letters
    ("I.S.I.S claims", "Islamic State", "ISIS", "I.S.I.S"),
    ("the i s i s attack", "Islamic State", "ISIS", "i s i s"),
    ("is-is!", "Islamic State", "ISIS", "is-is"),
    ("long live al shabaab", "Al-Shabaab", "Al-Shabaab", "al shabaab"),
    ("A.l.-S.h.a.b.a.a.b", "Al-Shabaab", "Al-Shabaab", "A.l.-S.h.a.b.a.a.b"),
    ("the I.S. flag", "Islamic State", "IS", "I.S"),
    # Latin alias written in Cyrillic and Arabic script
    ("слава ИСИС", "Islamic State", "ISIS", "ИСИС"),
    ("Талибан", "Taliban", "Taliban", "Талибан"),
    ("تحيا حماس", "Hamas", "Hamas", "حماس"),
    # Cyrillic / Arabic aliases written in Latin and in their own script
    ("join igil", "Islamic State", "ИГИЛ", "igil"),
    ("в ИГИЛ", "Islamic State", "ИГИЛ", "ИГИЛ"),
    ("dwla داعش", "Islamic State", "داعش", "داعش"),
    ("d'sh", "Islamic State", "داعش", "d'sh"),
    # mixed case
    ("HaMaS", "Hamas", "Hamas", "HaMaS"),
    ("tAlIbAn", "Taliban", "Taliban", "tAlIbAn"),
]


@pytest.mark.parametrize(("text", "org", "alias", "written"), HELD_OUT)
def test_obfuscated_forms_are_caught_with_original_span(
    matcher: AliasMatcher, text: str, org: str, alias: str, written: str
) -> None:
    hits = matcher.scan(text)
    start = text.index(written)
    expected = (start, start + len(written))
    assert any(h.org == org and h.alias == alias and h.span == expected for h in hits), hits
    assert all(h.org == org for h in hits), hits


@pytest.mark.parametrize(
    "text",
    [
        "visit the island, a thistle in crisis",
        "the synthesis of basis and oasis",
        "crisis",
        "th\u200bis",
        "th1s",
        "Daeshund",
        "hamass",
        "he dashed to the hams",
        "i s",
    ],
)
def test_aliases_do_not_match_inside_ordinary_words(matcher: AliasMatcher, text: str) -> None:
    assert matcher.scan(text) == []


def test_is_inside_ordinary_words_is_never_found(matcher: AliasMatcher) -> None:
    for text in ["this", "island", "crisis", "thIS", "ISland", "cr1s1s", "th\u200bis", "i s"]:
        assert matcher.scan(text) == [], text


def test_standalone_short_alias_matches_as_whole_word(matcher: AliasMatcher) -> None:
    text = "this island: IS in crisis"
    hit = _only(matcher.scan(text))
    start = text.index("IS")
    assert hit == AliasHit("Islamic State", "IS", (start, start + 2))


def test_unrelated_text_gives_no_hits(matcher: AliasMatcher) -> None:
    for text in [
        "The weather in Leeds was lovely today.",
        "Погода сегодня хорошая",
        "الطقس جميل اليوم",
        "ＨＥＬＬＯ ｗｏｒｌｄ",
        "",
        "\u200b\u200d",
    ]:
        assert matcher.scan(text) == [], text


def test_longest_match_wins_and_hits_are_deduplicated(matcher: AliasMatcher) -> None:
    # "I.S.I.S" contains "I.S" twice; only the longer ISIS hit is reported.
    assert matcher.scan("I.S.I.S") == [AliasHit("Islamic State", "ISIS", (0, 7))]
    # Same alias under two spellings of the same org: one hit per (org, span).
    dup = AliasMatcher([("Hamas", "Hamas"), ("Hamas", "HAMAS"), ("Other", "hamas")])
    hits = dup.scan("hamas")
    assert sorted(h.org for h in hits) == ["Hamas", "Other"]
    assert {h.span for h in hits} == {(0, 5)}


def test_several_hits_in_one_post_are_ordered_by_span(matcher: AliasMatcher) -> None:
    text = "Hamas and ＩＳＩＳ and the Taliban"
    assert [(h.alias, text[h.span[0] : h.span[1]]) for h in matcher.scan(text)] == [
        ("Hamas", "Hamas"),
        ("ISIS", "ＩＳＩＳ"),
        ("Taliban", "Taliban"),
    ]


def test_normalise_maps_every_form_character_back_to_the_original() -> None:
    text = "Ａ.b\u200bc\u0301ﬁ"
    norm = normalise(text)
    assert norm.form == "abcfi"
    assert [norm.source_range(i) for i in range(len(norm.form))] == [
        (0, 1),
        (2, 3),
        (4, 5),
        (6, 7),
        (6, 7),
    ]
    assert norm.source_span(2, 3) == (4, 6)  # the combining acute is part of the "c"
    assert normalise("ИГИЛ", Form.TRANSLIT).form == "igil"
    assert form_of("ЅСОРЕ") == "scope"


def test_confusables_come_from_the_bundled_unicode_table() -> None:
    table = confusable_map()
    assert len(table) > 500
    assert table["а"] == "a"  # Cyrillic a
    assert table["ο"] == "o"  # Greek omicron
    assert table["і"] == "i"  # Cyrillic/Ukrainian i


def test_empty_matcher_and_empty_aliases() -> None:
    assert AliasMatcher([]).scan("ISIS") == []
    assert AliasMatcher([("X", ""), ("X", "...")]).scan("... text") == []


def test_bench_matcher_runs_with_ten_thousand_aliases() -> None:
    rate = bench_matcher(n_aliases=10_000, n_posts=500)
    assert rate > 0


def test_text_scan_names_the_organisations_of_each_post_with_the_list_version(  # type: ignore[no-untyped-def]
    cli, tmp_path
) -> None:
    registry = tmp_path / "orgs.csv"
    registry.write_text(
        "name,aliases,category,source,designated_on\n"
        "Islamic State,ISIS|ISIL|Daesh|داعش|ИГИЛ,terrorist,UNSC,2014-05-30\n"
        "Example Front,Frente Ejemplo,terrorist,platform policy,2020-01-01\n",
        encoding="utf-8",
    )
    posts = tmp_path / "posts.jsonl"
    posts.write_text(
        "\n".join(
            json.dumps(p, ensure_ascii=False)
            for p in (
                {"id": 1, "text": "join the I.S.I.S brothers"},
                {"id": 2, "text": "Новости: ИГИЛ взяло ответственность"},
                {"id": 3, "text": "this island is in crisis"},
                {"id": "p4", "text": "دا\u200bعش"},
            )
        ),
        encoding="utf-8",
    )

    imported = cli("orgs", "import", registry)
    scanned = cli("text", "scan", posts)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": 1}\n', encoding="utf-8")
    refused = cli("text", "scan", broken)

    assert imported.code == 0, imported.stderr
    assert scanned.code == 0, scanned.stderr
    lines = [json.loads(line) for line in scanned.stdout.splitlines()]
    assert [line["id"] for line in lines] == [1, 2, 3, "p4"]
    assert [[o["org"] for o in line["orgs"]] for line in lines] == [
        ["Islamic State"],
        ["Islamic State"],
        [],
        ["Islamic State"],
    ]
    assert lines[0]["orgs"][0]["span"] == [9, 16]  # "I.S.I.S" in the original text
    assert all(line["label"] is None and line["list_version"] == 1 for line in lines)
    assert [line["score"] for line in lines] == [1.0, 1.0, 0.0, 1.0]
    assert refused.code != 0 and "line 1" in refused.stderr


def test_an_acronym_is_not_the_word_it_spells(matcher: AliasMatcher) -> None:
    # "IS" is registered in capitals: the English word and a sentence's "Is" are not it.
    for text in ["this is fine", "Is it raining?", "what is IS? no: what is is", "iѕ"]:
        hits = matcher.scan(text)
        assert all(text[h.span[0] : h.span[1]] == "IS" for h in hits), (text, hits)
    assert [h.alias for h in matcher.scan("what is IS")] == ["IS"]
    for text in ["IS claimed it", "the I.S. flag", "1$ fighters", "ІЅ returns"]:
        assert [h.alias for h in matcher.scan(text)] == ["IS"], text
    # A short alias registered in small letters matches in any case.
    lower = AliasMatcher([("Example Front", "ef")])
    assert [h.alias for h in lower.scan("go ef go")] == ["ef"]
    assert [h.alias for h in lower.scan("go EF go")] == ["ef"]
