"""Hash lists with the industry: every format round trip, unknown types, GIFCT spellings, fetchers.

Media are real (made with ffmpeg's lavfi sources and banked by the real pipeline); the http fetcher
talks to a real `http.server` on the loopback interface.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from firebreak.errors import HashListInvalid
from firebreak.exchange import (
    GIFCT_COLUMNS,
    HashRecord,
    ListFormat,
    ListNotWritable,
    gifct_type,
    guess_format,
    read_gifct,
    read_list,
    write_list,
)
from firebreak.exchange.fetchers import (
    FetchConfig,
    FetchFailed,
    FetchResult,
    HttpFetcher,
    UnknownFetcher,
    fetch_into_bank,
    fetcher_names,
    get_fetcher,
    register_fetcher,
    state_path,
    unregister_fetcher,
)
from firebreak.match import Verdict
from firebreak.service import Firebreak
from firebreak.settings import Settings
from firebreak.store import SignalValue
from tests.conftest import CliResult, ffmpeg

PDQ_A = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
PDQ_B = "d8f871cce0f4e84d8a3700b31cc3ba3ebe0ccd1b3131b1e0ddcb50ece2231313"
PDQ_C = "8f5adac3c4bd3c9b2316e52d3a6cd0953f6d4e2a1bcb1a98d5a23d4c2b0d0f61"
MD5_X = "0123456789abcdef0123456789abcdef"
UNKNOWN_TYPE = "TMK+PDQF"
UNKNOWN_VALUE = "0123456789abcdef" * 8
METADATA = {
    "label": "terrorist-propaganda",
    "category": "TVEC",
    "source": "firebreak-tests",
    "date": "2024-05-01",
}


# --- media and helpers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def video(media_dir: Path) -> Path:
    out = media_dir / "xfmt-testsrc2.mp4"
    if not out.exists():
        ffmpeg(
            "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "3",
            "-pix_fmt", "yuv420p", out,
        )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def photo(media_dir: Path) -> Path:
    out = media_dir / "xfmt-mandelbrot.jpg"
    if not out.exists():
        ffmpeg("-f", "lavfi", "-i", "mandelbrot=size=320x240", "-frames:v", "1", out)
    return out


@pytest.fixture
def other(tmp_path: Path) -> Iterator[Firebreak]:
    """A second Firebreak instance: the platform a list is shared with."""
    service = Firebreak(Settings(home=tmp_path / "other-home"))
    yield service
    service.close()


def rows(text: str, fmt: ListFormat) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """A list as a set of (type, value, metadata): what must survive a round trip."""
    return {
        (r.signal_type, r.value, tuple(sorted(r.metadata.items())))
        for r in read_list(text, fmt, "list")
    }


def hash_set(text: str, fmt: ListFormat) -> set[tuple[str, str]]:
    return {(t, v) for t, v, _ in rows(text, fmt)}


def te(*lines: str) -> str:
    return "".join(f"{line}\n" for line in lines)


# --- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(ListFormat))
def test_round_trip_of_a_bank_with_a_real_photo_and_video(
    fmt: ListFormat, fb: Firebreak, other: Firebreak, photo: Path, video: Path
) -> None:
    fb.create_bank("src")
    fb.bank_file("src", video, metadata=METADATA)
    fb.bank_file("src", photo, metadata={"label": "logo", "note": "not a GIFCT column"})
    first = fb.export_bank("src", fmt)

    other.create_bank("dst")
    summary = other.import_hashes("dst", first, fmt, f"src.{fmt.value}")
    second = other.export_bank("dst", fmt)

    assert (summary.skipped, summary.passed_through) == (0, 0)
    assert hash_set(second, fmt) == hash_set(first, fmt)
    assert {t for t, _ in hash_set(first, fmt)} == {"pdq", "vpdq", "video_md5", "video_sha256"}
    # ThreatExchange's digest types are video types: a TE list leaves out the photo's digests.
    assert len(hash_set(first, fmt)) == (4 if fmt is ListFormat.TE else 6)
    # The copy matches the originals, the video frame by frame.
    assert other.match_file(video).verdict is Verdict.MATCH
    assert other.match_file(photo).verdict is Verdict.MATCH

    if fmt is ListFormat.CSV:
        assert sorted(i.name for i in other.store.items("dst")) == sorted([photo.name, video.name])
    if fmt is ListFormat.GIFCT:
        assert rows(second, fmt) == rows(first, fmt)
        video_rows = {t for t, _, m in rows(first, fmt) if m == tuple(sorted(METADATA.items()))}
        assert video_rows == {"vpdq", "video_md5", "video_sha256"}
        photo_rows = {t for t, _, m in rows(first, fmt) if m == (("label", "logo"),)}
        assert photo_rows == {"pdq", "video_md5", "video_sha256"}
        metadata = {dict(i.metadata).get("label") for i in other.store.items("dst")}
        assert metadata == {"terrorist-propaganda", "logo"}
        (vpdq_item,) = [i for i in other.store.items("dst") if i.media_kind == "video"]
        assert dict(vpdq_item.metadata) == METADATA
    # Importing the same list again adds nothing.
    again = other.import_hashes("dst", first, fmt, "again")
    assert (again.added, again.skipped) == (0, summary.added)


def test_gifct_header_and_rows_as_written(fb: Firebreak, other: Firebreak) -> None:
    fb.create_bank("src")
    fb.add_hashes("src", "one", [SignalValue("pdq", PDQ_A)], "test", metadata=METADATA)
    text = fb.export_bank("src", ListFormat.GIFCT)
    assert text.splitlines() == [
        ",".join(GIFCT_COLUMNS),
        f"pdq,{PDQ_A},terrorist-propaganda,TVEC,firebreak-tests,2024-05-01",
    ]


# --- unknown types ------------------------------------------------------------------------------


def _list_with_unknown(fmt: ListFormat) -> str:
    records = [HashRecord("pdq", PDQ_A, "known"), HashRecord(UNKNOWN_TYPE, UNKNOWN_VALUE, "odd")]
    return write_list(records, fmt)


@pytest.mark.parametrize("fmt_out", list(ListFormat))
@pytest.mark.parametrize("fmt_in", list(ListFormat))
def test_unknown_types_pass_through_every_format(
    fmt_in: ListFormat, fmt_out: ListFormat, fb: Firebreak
) -> None:
    fb.create_bank("b")
    summary = fb.import_hashes("b", _list_with_unknown(fmt_in), fmt_in, "in")
    assert (summary.added, summary.passed_through) == (2, 1)

    exported = fb.export_bank("b", fmt_out)
    assert (UNKNOWN_TYPE, UNKNOWN_VALUE) in hash_set(exported, fmt_out)
    assert ("pdq", PDQ_A) in hash_set(exported, fmt_out)
    if fmt_out is ListFormat.TE:
        assert f"{UNKNOWN_TYPE} {UNKNOWN_VALUE}" in exported.splitlines()

    # ...and once more through another import: still there, still unchanged.
    fb.create_bank("c")
    assert fb.import_hashes("c", exported, fmt_out, "out").passed_through == 1
    assert hash_set(fb.export_bank("c", fmt_out), fmt_out) == hash_set(exported, fmt_out)


def test_a_type_a_te_line_cannot_hold_is_refused_not_changed(fb: Firebreak) -> None:
    fb.create_bank("b")
    text = f"{GIFCT_HEAD}\nCustom Hash,abc def,,,,\npdq,{PDQ_A},,,,\n"
    assert fb.import_hashes("b", text, ListFormat.GIFCT, "in").passed_through == 1
    for fmt in (ListFormat.CSV, ListFormat.GIFCT):
        assert ("Custom Hash", "abc def") in hash_set(fb.export_bank("b", fmt), fmt)
    with pytest.raises(ListNotWritable, match=r"'Custom Hash'.*export as csv or gifct"):
        fb.export_bank("b", ListFormat.TE)


def test_a_digest_in_capitals_is_the_same_item(fb: Firebreak) -> None:
    fb.create_bank("b")
    upper = fb.import_hashes("b", f"{GIFCT_HEAD}\nMD5,{MD5_X.upper()}\n", ListFormat.GIFCT, "u")
    lower = fb.import_hashes("b", f"video_md5 {MD5_X}\n", ListFormat.TE, "l")
    assert (upper.added, lower.added, lower.skipped) == (1, 0, 1)


# --- GIFCT spellings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("PDQ", "pdq"),
        ("pdq", "pdq"),
        (" Pdq ", "pdq"),
        ("MD5", "video_md5"),
        ("md5", "video_md5"),
        ("video_md5", "video_md5"),
        ("Video MD5", "video_md5"),
        ("SHA256", "video_sha256"),
        ("SHA-256", "video_sha256"),
        ("video_sha256", "video_sha256"),
        ("vPDQ", "vpdq"),
        ("VPDQ", "vpdq"),
        ("TMK+PDQF", "TMK+PDQF"),  # unknown: kept exactly as written
        ("Custom_Hash", "Custom_Hash"),
    ],
)
def test_gifct_type_spellings(written: str, read: str) -> None:
    assert gifct_type(written) == read


def test_gifct_list_as_a_hash_sharing_database_writes_it(
    fb: Firebreak, video: Path, photo: Path
) -> None:
    """Upper-case header and types, a BOM, CRLF, blank optional columns: banked and matchable."""
    md5 = hashlib.md5(video.read_bytes()).hexdigest().upper()
    (pdq_line,) = fb.hash_strings(photo, "pdq")
    pdq = pdq_line.split(",")[0].upper()
    text = (
        "\ufeffHASH_TYPE,HASH_VALUE,LABEL,CATEGORY,SOURCE,DATE\r\n"
        f"MD5,{md5},Violent Extremism,,GIFCT,2023-02-01\r\n"
        f"PDQ,{pdq},,,,\r\n"
        f"TMK+PDQF,{UNKNOWN_VALUE},,,GIFCT,\r\n"
    )
    assert guess_format("hsdb-export.csv", text) is ListFormat.GIFCT
    fb.create_bank("gifct")
    summary = fb.import_hashes("gifct", text, ListFormat.GIFCT, "hsdb-export.csv")
    assert (summary.added, summary.skipped, summary.passed_through) == (3, 0, 1)

    metadata = {i.name.split("-")[0]: dict(i.metadata) for i in fb.store.items("gifct")}
    assert metadata == {
        "video_md5": {"label": "Violent Extremism", "source": "GIFCT", "date": "2023-02-01"},
        "pdq": {},
        UNKNOWN_TYPE: {"source": "GIFCT"},
    }
    assert fb.match_file(video).verdict is Verdict.MATCH  # through its md5
    assert fb.match_file(photo).verdict is Verdict.MATCH  # through its pdq
    exported = fb.export_bank("gifct", ListFormat.GIFCT)
    assert ("video_md5", md5.lower()) in hash_set(exported, ListFormat.GIFCT)
    assert ("pdq", pdq.lower()) in hash_set(exported, ListFormat.GIFCT)
    assert (UNKNOWN_TYPE, UNKNOWN_VALUE) in hash_set(exported, ListFormat.GIFCT)


# --- malformed lists ----------------------------------------------------------------------------

GIFCT_HEAD = ",".join(GIFCT_COLUMNS)


@pytest.mark.parametrize(
    ("fmt", "text", "line", "reason"),
    [
        (
            ListFormat.GIFCT,
            f"{GIFCT_HEAD}\npdq,{PDQ_A}\npdq,\n",
            3,
            "empty hash_type or hash_value",
        ),
        (ListFormat.GIFCT, f"{GIFCT_HEAD}\n\npdq,{PDQ_A}\n,{PDQ_B}\n", 4, "empty hash_type"),
        (ListFormat.GIFCT, f"{GIFCT_HEAD}\npdq,{PDQ_A},a,b,c,d,extra\n", 2, "7 fields"),
        (ListFormat.GIFCT, f'{GIFCT_HEAD}\npdq,{PDQ_A}\npdq,"{PDQ_B}"x\n', 3, "bad CSV"),
        (ListFormat.GIFCT, f"{GIFCT_HEAD}\npdq,{PDQ_A}\npdq,nothex\n", 3, "not a 256-bit"),
        (ListFormat.GIFCT, f"{GIFCT_HEAD}\nMD5,{MD5_X}\nMD5,xyz\n", 3, "not a valid md5"),
        (ListFormat.GIFCT, "type,value\npdq,x\n", 1, "header must name hash_type"),
        (ListFormat.GIFCT, "", 1, "header must name hash_type"),
        (ListFormat.CSV, f"item,signal_type,signal\na,pdq,{PDQ_A},x\n", 2, "4 fields"),
        (ListFormat.CSV, f'item,signal_type,signal\na,pdq,"{PDQ_A}\n', 2, "bad CSV"),
        (ListFormat.TE, f"pdq {PDQ_A}\n# comment\npdq\n", 3, "expected '<signal_type>"),
    ],
)
def test_malformed_row_is_refused_with_its_line(
    fmt: ListFormat, text: str, line: int, reason: str, fb: Firebreak
) -> None:
    fb.create_bank("b")
    with pytest.raises(HashListInvalid) as raised:
        fb.import_hashes("b", text, fmt, "bad.list")
    assert (raised.value.source, raised.value.line) == ("bad.list", line)
    assert reason in raised.value.reason
    assert str(raised.value).startswith(f"bad.list:{line}: ")
    assert fb.store.items("b") == []  # nothing of it was banked


def test_gifct_records_remember_their_line() -> None:
    text = f"{GIFCT_HEAD}\n\npdq,{PDQ_A}\n" + f'pdq,{PDQ_B},"two\nlines"\n' + f"pdq,{PDQ_C}\n"
    assert [r.line for r in read_gifct(text, "x")] == [3, 4, 6]


@pytest.mark.parametrize(
    ("name", "text", "fmt"),
    [
        ("list.csv", f"{GIFCT_HEAD}\npdq,{PDQ_A}\n", ListFormat.GIFCT),
        ("list.txt", f"\ufeff\n hash_type , hash_value\npdq,{PDQ_A}\n", ListFormat.GIFCT),
        ("list", f"item,signal_type,signal\na,pdq,{PDQ_A}\n", ListFormat.CSV),
        ("list.csv", f"a,pdq,{PDQ_A}\n", ListFormat.CSV),
        ("list.txt", f"pdq {PDQ_A}\n", ListFormat.TE),
        ("https://example.org/feed.csv?x=1", "", ListFormat.CSV),
    ],
)
def test_guess_format(name: str, text: str, fmt: ListFormat) -> None:
    assert guess_format(name, text) is fmt


# --- the file fetcher ---------------------------------------------------------------------------


def test_file_fetcher_adds_only_what_is_new(fb: Firebreak, tmp_path: Path) -> None:
    listing = tmp_path / "feed.txt"
    listing.write_text(te(f"pdq {PDQ_A}", f"pdq {PDQ_B}"))

    first = fetch_into_bank(fb, "feed", "file", str(listing))
    assert first.created_bank and first.changed
    assert (first.added, first.skipped, first.passed_through) == (2, 0, 0)
    assert fb.store.get_bank("feed").kind == "block"
    assert state_path(fb.settings.home, "feed", "file", str(listing)).is_file()

    second = fetch_into_bank(fb, "feed", "file", str(listing))
    assert not second.changed and not second.created_bank
    assert (second.fetched, second.added, second.skipped) == (0, 0, 0)

    os.utime(listing, ns=(1, 1))  # touched, not changed: still nothing
    assert not fetch_into_bank(fb, "feed", "file", str(listing)).changed

    with listing.open("a") as f:
        f.write(f"{UNKNOWN_TYPE} {UNKNOWN_VALUE}\n")
    third = fetch_into_bank(fb, "feed", "file", str(listing))
    assert third.changed
    assert (third.added, third.skipped, third.passed_through) == (1, 2, 1)
    assert len(fb.store.items("feed")) == 3

    # A bank made again under the same name starts from nothing, whatever the checkpoint says.
    fb.delete_bank("feed")
    fb.create_bank("feed")
    assert fetch_into_bank(fb, "feed", "file", str(listing)).added == 3


def test_file_fetcher_formats_and_failures(fb: Firebreak, tmp_path: Path) -> None:
    gifct = tmp_path / "hsdb.csv"
    gifct.write_text(f"{GIFCT_HEAD}\nPDQ,{PDQ_A},lbl,,,\n")
    summary = fetch_into_bank(fb, "g", "file", str(gifct))
    assert summary.added == 1
    assert [dict(i.metadata) for i in fb.store.items("g")] == [{"label": "lbl"}]

    bad = tmp_path / "bad.txt"
    bad.write_text(te(f"pdq {PDQ_A}", "pdq nothex"))
    with pytest.raises(HashListInvalid) as raised:
        fetch_into_bank(fb, "bad", "file", str(bad))
    assert raised.value.line == 2
    assert fb.store.items("bad") == []
    assert not state_path(fb.settings.home, "bad", "file", str(bad)).exists()
    bad.write_text(te(f"pdq {PDQ_A}"))  # fixed: fetched (the failed one left no checkpoint)
    assert fetch_into_bank(fb, "bad", "file", str(bad)).added == 1

    with pytest.raises(FetchFailed, match="cannot open"):
        fetch_into_bank(fb, "g", "file", str(tmp_path / "missing.txt"))
    with pytest.raises(FetchFailed, match="not a regular file"):
        fetch_into_bank(fb, "g", "file", str(tmp_path))
    with pytest.raises(FetchFailed, match="more than 10"):
        fetch_into_bank(fb, "g", "file", str(gifct), max_bytes=10)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"pdq \xff\xfe\n")
    with pytest.raises(FetchFailed, match="not UTF-8"):
        fetch_into_bank(fb, "g", "file", str(binary))


def test_bank_fetch_command(cli: Callable[..., CliResult], tmp_path: Path) -> None:
    listing = tmp_path / "feed.csv"
    listing.write_text(f"{GIFCT_HEAD}\npdq,{PDQ_A},a,,,\nmd5,{MD5_X},b,,,\n")
    args = ("bank", "fetch", "feed", "--source", "file", "--location", listing)

    first = cli(*args)
    second = cli(*args, "--format", "gifct")
    exported = cli("bank", "export", "feed", "--format", "gifct")
    unknown = cli("bank", "fetch", "feed", "--source", "ftp", "--location", listing)

    assert first.code == 0, first.stderr
    assert "fetched 2 hashes" in first.stdout and "added 2 items to feed" in first.stdout
    assert "(0 already there, 0 signals of unknown types" in first.stdout
    assert second.code == 0, second.stderr
    assert "added 0 items" in second.stdout
    assert exported.code == 0
    assert hash_set(exported.stdout, ListFormat.GIFCT) == {("pdq", PDQ_A), ("video_md5", MD5_X)}
    assert unknown.code != 0
    assert unknown.stderr.startswith("firebreak: unknown fetcher: ftp (known: file, http")


# --- the http fetcher ---------------------------------------------------------------------------


class _ListServer:
    """A loopback server of one hash list at /list.txt, with an ETag it honours; /moved
    redirects to an ftp:// URL."""

    def __init__(self) -> None:
        self.body = te(f"pdq {PDQ_A}", f"pdq {PDQ_B}").encode()
        self.seen: list[tuple[str, int, str | None]] = []  # path, status, If-None-Match
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = server.body
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                asked = self.headers.get("If-None-Match")
                if self.path == "/moved":
                    status = 302
                elif self.path != "/list.txt":
                    status = 404
                else:
                    status = 304 if asked == etag else 200
                # Noted before answering: the client may be on to its next step once answered.
                server.seen.append((self.path, status, asked))
                if status == 404:
                    self.send_error(status)
                    return
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", "ftp://127.0.0.1/list.txt")
                else:
                    self.send_header("ETag", etag)
                if status != 304:
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body) if status == 200 else 0))
                self.end_headers()
                if status == 200:
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def statuses(self) -> list[int]:
        return [status for _, status, _ in self.seen]


@pytest.fixture
def list_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[_ListServer]:
    for proxy in (
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(proxy, raising=False)
    server = _ListServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def test_http_fetcher_uses_the_etag(fb: Firebreak, list_server: _ListServer) -> None:
    url = f"{list_server.url}/list.txt"
    first = fetch_into_bank(fb, "web", "http", url)
    second = fetch_into_bank(fb, "web", "http", url)

    assert (first.added, first.fetched) == (2, 2)
    assert not second.changed
    assert (second.fetched, second.added, second.skipped) == (0, 0, 0)
    assert list_server.statuses() == [200, 304]
    first_etag = (
        '"' + hashlib.sha256(te(f"pdq {PDQ_A}", f"pdq {PDQ_B}").encode()).hexdigest()[:16] + '"'
    )
    assert [asked for _, _, asked in list_server.seen] == [None, first_etag]

    list_server.body += te(f"pdq {PDQ_C}").encode()  # a new list, a new ETag
    third = fetch_into_bank(fb, "web", "http", url)
    assert (third.added, third.skipped) == (1, 2)
    assert list_server.statuses() == [200, 304, 200]
    assert len(fb.store.items("web")) == 3


def test_http_fetcher_limits(fb: Firebreak, list_server: _ListServer) -> None:
    fetcher = HttpFetcher()
    with pytest.raises(FetchFailed, match="more than 10"):
        fetcher.fetch(FetchConfig(f"{list_server.url}/list.txt", max_bytes=10))
    with pytest.raises(FetchFailed, match="HTTP 404"):
        fetcher.fetch(FetchConfig(f"{list_server.url}/nothing.txt"))
    with pytest.raises(FetchFailed, match="not http"):
        fetcher.fetch(FetchConfig(f"{list_server.url}/moved"))
    for refused in ("file:///etc/passwd", "ftp://127.0.0.1/list.txt", "http:///list.txt"):
        with pytest.raises(FetchFailed, match=r"only http:// and https://"):
            fetcher.fetch(FetchConfig(refused))
    with pytest.raises(FetchFailed, match="cannot fetch"):
        fetcher.fetch(FetchConfig("http://127.0.0.1:9/list.txt", timeout_s=5))
    # A server without validators: an unchanged body (same SHA-256) still gives nothing.
    result = fetcher.fetch(FetchConfig(f"{list_server.url}/list.txt"))
    assert len(result.updates) == 2
    again = fetcher.fetch(
        FetchConfig(
            f"{list_server.url}/list.txt", checkpoint={"sha256": result.checkpoint["sha256"]}
        )
    )
    assert not again.changed and again.updates == ()


# --- the registry -------------------------------------------------------------------------------


class MemoryFetcher:
    """A third-party source: a change log of (type, value, removed) since a sequence number."""

    name = "test-memory"

    def __init__(self) -> None:
        self.log: list[tuple[str, str, bool]] = []

    def fetch(self, config: FetchConfig) -> FetchResult:
        since = int(config.checkpoint.get("seq", 0))
        new = self.log[since:]
        updates = tuple(HashRecord(t, v) for t, v, removed in new if not removed)
        removals = tuple(HashRecord(t, v) for t, v, removed in new if removed)
        return FetchResult(updates, {"seq": len(self.log)}, removals, changed=bool(new))


@pytest.fixture
def memory_fetcher() -> Iterator[MemoryFetcher]:
    fetcher = MemoryFetcher()
    register_fetcher(fetcher)
    yield fetcher
    unregister_fetcher(fetcher.name)


def test_a_registered_fetcher_is_found_by_name(
    memory_fetcher: MemoryFetcher, fb: Firebreak
) -> None:
    assert get_fetcher("test-memory") is memory_fetcher
    assert {"file", "http", "test-memory"} <= set(fetcher_names())
    with pytest.raises(ValueError, match="already registered"):
        register_fetcher(MemoryFetcher())
    with pytest.raises(UnknownFetcher, match="known: file, http, test-memory"):
        get_fetcher("nope")

    memory_fetcher.log += [("pdq", PDQ_A, False), ("pdq", PDQ_B, False)]
    assert fetch_into_bank(fb, "mem", "test-memory", "anywhere").added == 2
    assert not fetch_into_bank(fb, "mem", "test-memory", "anywhere").changed

    memory_fetcher.log += [("pdq", PDQ_A, True), ("pdq", PDQ_C, False)]
    summary = fetch_into_bank(fb, "mem", "test-memory", "anywhere")
    assert (summary.added, summary.removed) == (1, 1)
    exported = fb.export_bank("mem", ListFormat.TE)
    assert hash_set(exported, ListFormat.TE) == {("pdq", PDQ_B), ("pdq", PDQ_C)}
