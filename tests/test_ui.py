"""The review console in a real headless Chromium (Debian's chromium and chromium-driver): log in
with a key, open a held upload beside the clip it matched, check the moderator protection (blurred,
greyscale, muted, no autoplay, revealed one item at a time), confirm it with the keyboard, and
see the bank and the audit log updated. Also: wrong keys, roles without "review" and forged
posts are refused.

FIREBREAK_UI_SCREENSHOT=1 also saves the item page to docs/review-ui.png (the README's picture).
"""

from __future__ import annotations

import html
import io
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from firebreak.api.app import create_app
from firebreak.incidents import IncidentDesk
from firebreak.live.session import LiveEvent
from firebreak.reviews import ReviewDesk
from firebreak.service import Firebreak
from firebreak.settings import ActionRule, Settings

from .conftest import REPO, ffmpeg

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1360,1240",
)
SCREENSHOT = REPO / "docs" / "review-ui.png"


@dataclass
class Console:
    app: FastAPI
    fb: Firebreak
    base: str
    driver: WebDriver
    keys: dict[str, str]
    review_id: int


def _server(app: FastAPI) -> tuple[uvicorn.Server, threading.Thread, str]:
    """The app served by uvicorn on a free loopback port, in a background thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("uvicorn did not start")
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def _chromium(profile: Path) -> WebDriver:
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        if os.environ.get("FIREBREAK_TEST_NO_BROWSER") == "1":
            pytest.skip("FIREBREAK_TEST_NO_BROWSER=1 leaves the browser tests out")
        pytest.fail(
            f"{CHROMIUM} and {CHROMEDRIVER} are needed (apt-get install chromium chromium-driver; "
            "scripts/ensure-system-packages.sh does), or set FIREBREAK_TEST_NO_BROWSER=1.",
            pytrace=False,
        )
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture(scope="module")
def console(clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """A Firebreak served over HTTP with one upload held for review (a mirrored, scaled copy of
    a banked clip), a moderator's and a service's key, and a headless Chromium."""
    folder = tmp_path_factory.mktemp("ui")
    driver = _chromium(folder / "profile")
    try:
        copy = folder / "upload-1.mp4"
        ffmpeg(
            "-i", clips["cockatoo.mp4"], "-t", "10", "-vf", "hflip,scale=400:-2", "-crf", "32", copy
        )
        settings = Settings(
            home=folder / "home", action_rules=[ActionRule(verdict="match", actions=["hold"])]
        )
        app = create_app(settings)
        fb: Firebreak = app.state.fb
        try:
            fb.create_bank("attacks")
            fb.bank_file("attacks", fb.keep_media(clips["cockatoo.mp4"]), "cockatoo.mp4")
            held = ReviewDesk(fb).scan(copy, "upload-1.mp4", "key:ingest").review
            assert held is not None and held.matches, "the copy should be held for review"
            keys = {
                role: fb.store.keys.create(f"{role}-1", role, "test")[1]
                for role in ("moderator", "service")
            }
            server, thread, base = _server(app)
        except BaseException:
            fb.close()
            raise
        try:
            yield Console(app, fb, base, driver, keys, held.id)
        finally:
            server.should_exit = True  # its lifespan closes the Firebreak
            thread.join(timeout=10)
    finally:
        driver.quit()


def _wait(driver: WebDriver, condition: str, timeout: float = 15) -> None:
    """Wait until the JavaScript expression `condition` is true on the page."""
    WebDriverWait(driver, timeout).until(lambda d: d.execute_script(f"return !!({condition})"))


def _log_in(console: Console, key: str, start: str = "/ui") -> None:
    driver = console.driver
    driver.get(console.base + start)
    _wait(driver, "document.getElementById('key')")
    field = driver.find_element(By.ID, "key")
    field.send_keys(key)
    driver.find_element(By.ID, "login").click()
    _wait(
        driver,
        "document.readyState === 'complete' && !document.getElementById('key') "
        "|| document.getElementById('error')",
    )


def _log_out(console: Console) -> None:
    console.driver.get(console.base + "/ui/logout")
    assert console.driver.get_cookie("fb_session") is None


def _post(url: str, data: dict[str, str], cookie: str) -> int:
    request = urllib.request.Request(
        url, urllib.parse.urlencode(data).encode(), {"Cookie": cookie}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _style(driver: WebDriver, selector: str) -> dict[str, object]:
    state: dict[str, object] = driver.execute_script(
        "const el = document.querySelector(arguments[0]);"
        "return {filter: getComputedStyle(el).filter, muted: el.muted, autoplay: el.autoplay,"
        " paused: el.paused, ready: el.readyState, time: el.currentTime};",
        selector,
    )
    return state


def test_wrong_keys_other_roles_and_forged_posts_are_refused(console: Console) -> None:
    driver = console.driver
    review = f"/ui/review/{console.review_id}"
    driver.get(console.base + review)
    assert "/ui/login" in driver.current_url  # no session: to the login form

    _log_in(console, "fbk_12345678_not-a-real-key", review)
    assert "not valid" in driver.find_element(By.ID, "error").text
    assert driver.get_cookie("fb_session") is None

    _log_in(console, console.keys["service"], review)
    assert "service role may not" in driver.find_element(By.ID, "error").text
    assert driver.get_cookie("fb_session") is None

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{console.base}/ui/media/review/{console.review_id}", timeout=10)
    assert refused.value.code == 401

    _log_in(console, console.keys["moderator"], review)
    assert driver.current_url.endswith(review)  # back where the moderator was going
    cookie = driver.get_cookie("fb_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    before = console.fb.store.reviews.get(console.review_id).status
    audit = len(console.fb.store.audit.entries(f"review:{console.review_id}"))
    session = f"fb_session={cookie['value']}"
    url = f"{console.base}{review}/decision"
    assert _post(url, {"decision": "confirm", "bank": "attacks"}, session) == 403
    assert _post(url, {"decision": "confirm", "csrf": "forged"}, session) == 403
    assert console.fb.store.reviews.get(console.review_id).status == before
    assert len(console.fb.store.audit.entries(f"review:{console.review_id}")) == audit
    _log_out(console)


def test_moderator_reviews_an_upload_and_confirms_it_into_the_bank(console: Console) -> None:
    driver = console.driver
    _log_in(console, console.keys["moderator"])
    rows = driver.find_elements(By.CSS_SELECTOR, "#queue tbody tr")
    assert any("upload-1.mp4" in row.text and "cockatoo.mp4" in row.text for row in rows)

    driver.find_element(By.LINK_TEXT, "upload-1.mp4").click()
    _wait(driver, "document.querySelector('#media-item video')")
    assert driver.current_url.endswith(f"/ui/review/{console.review_id}")
    query, item = "#media-query .preview", "#media-item .preview"
    _wait(driver, "[...document.querySelectorAll('video')].every(v => v.readyState >= 2)")
    time.sleep(0.5)  # long enough for anything set to autoplay to have started
    for selector in (query, item):
        state = _style(driver, selector)
        assert "blur(24px)" in str(state["filter"]) and "grayscale(1)" in str(state["filter"])
        assert state["muted"] is True and state["autoplay"] is False and state["paused"] is True
    segments = driver.find_element(By.ID, "segments").text
    assert "Upload" in segments and "Bank item" in segments
    if os.environ.get("FIREBREAK_UI_SCREENSHOT") == "1":
        _screenshot(driver)

    ActionChains(driver).send_keys("v").perform()  # reveal this item's previews
    assert _style(driver, query)["filter"] == "none" and _style(driver, item)["filter"] == "none"
    ActionChains(driver).send_keys("v").perform()  # veil them again
    driver.find_element(By.CSS_SELECTOR, "#media-query button.reveal").click()  # one preview
    assert _style(driver, query)["filter"] == "none"
    assert "blur" in str(_style(driver, item)["filter"])

    match = console.fb.store.reviews.get(console.review_id).matches[0]
    driver.execute_script("document.querySelectorAll('video').forEach(v => v.currentTime = 5)")
    driver.find_element(By.CSS_SELECTOR, "button.seek").click()  # both to the aligned start
    _wait(driver, "[...document.querySelectorAll('video')].every(v => v.currentTime < 1)")
    assert abs(float(str(_style(driver, item)["time"])) - match["item_segment"][0]) < 0.1

    ActionChains(driver).send_keys("n").perform()  # the note field
    ActionChains(driver).send_keys("the attack video, mirrored").perform()
    ActionChains(driver).send_keys("\ue00c").perform()  # Escape: out of the note
    ActionChains(driver).send_keys("c").perform()  # confirm
    _wait(driver, "document.getElementById('flash')")
    assert "confirmed" in driver.find_element(By.ID, "flash").text

    banked = [i.name for i in console.fb.store.items("attacks")]
    assert "upload-1.mp4" in banked
    decided = console.fb.store.reviews.get(console.review_id)
    assert (decided.status, decided.banked_bank) == ("confirmed", "attacks")
    last = console.fb.store.audit.entries(f"review:{console.review_id}")[0]
    assert (last.action, last.actor) == ("review.confirm", "key:moderator-1")
    assert last.reason == "the attack video, mirrored"
    _log_out(console)


def _screenshot(driver: WebDriver) -> None:
    """The item page, previews blurred, as a small palette PNG for the README."""
    driver.execute_script("window.scrollTo(0, 0)")
    picture = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    picture.quantize(colors=256).save(SCREENSHOT, optimize=True)
    assert SCREENSHOT.stat().st_size < 400_000


def _client_login(client: TestClient, key: str) -> str:
    """Log `client` in through the form; the page's CSRF token."""
    form = client.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce is not None
    client.post("/ui/login", data={"key": key, "nonce": nonce.group(1), "next": "/ui"})
    page = client.get("/ui")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert page.status_code == 200 and token is not None
    return token.group(1)


def test_live_incident_page_decisions_wellness_and_revoked_keys(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    app = create_app(Settings(home=tmp_path / "home"))
    fb: Firebreak = app.state.fb
    fb.create_bank("attacks")
    fb.bank_file("attacks", fb.keep_media(clips["astronaut.png"]), "astronaut.png")
    picture = np.asarray(Image.open(clips["astronaut.png"]).convert("RGB"))
    event = LiveEvent(
        "alert",
        "rtmp://x/live/s1",
        6.0,
        time.time(),
        bank="attacks",
        item="astronaut.png",
        score=0.86,
        signals={"pdq": {"distance": 12}},
    )
    IncidentDesk(fb).record_alert("stream-1", event, None, picture, actor="live")
    _, moderator = fb.store.keys.create("moderator-1", "moderator", "test")
    client = TestClient(app)

    csrf = _client_login(client, moderator)
    assert "stream-1" in client.get("/ui").text
    page = client.get("/ui/incident/stream-1")
    frame = re.search(r'<img class="preview" src="([^"]+)"', page.text)
    assert page.status_code == 200 and frame is not None
    assert 'class="media veiled" id="media-query"' in page.text  # the grab, veiled
    assert 'class="media veiled" id="media-item"' in page.text  # the bank item beside it
    assert "default-src 'none'" in page.headers["content-security-policy"]
    grab = client.get(html.unescape(frame.group(1)))
    assert grab.status_code == 200 and grab.headers["content-type"] == "image/jpeg"
    sneaky = client.get(
        "/ui/media/incident/stream-1", params={"frame": "../../keys/ui-session.key"}
    )
    assert sneaky.status_code == 404

    decided = client.post(
        "/ui/incident/stream-1/decision",
        data={"csrf": csrf, "decision": "escalate", "note": "unsure"},
        follow_redirects=False,
    )
    assert decided.status_code == 303 and "done=incident" in decided.headers["location"]
    assert fb.store.incidents.get("stream-1").status == "escalated"
    last = fb.store.audit.entries("incident:stream-1")[0]
    assert (last.action, last.actor, last.reason) == (
        "incident.escalate",
        "key:moderator-1",
        "unsure",
    )
    again = client.post(
        "/ui/incident/stream-1/decision", data={"csrf": csrf, "decision": "escalate"}
    )
    assert again.status_code == 409 and "cannot go from escalated" in again.text

    client.post("/ui/settings", data={"csrf": csrf, "blur": "8"})  # no greyscale, light blur
    assert '<body class="blur-8 no-grey"' in client.get("/ui/incident/stream-1").text

    fb.store.keys.revoke("moderator-1", "test")  # its sessions end at once
    assert client.get("/ui", follow_redirects=False).status_code == 303
    fb.close()
