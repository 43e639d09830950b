"""The review console (`/ui`): server-rendered pages where moderators work the review queue.

    /ui/login ──► signed session cookie (HttpOnly, SameSite=Strict) ──► /ui: the queue
    /ui/review/{id}     a held upload beside the bank item it matched, aligned segments, decide
    /ui/incident/{name} a live incident: its frame grabs, alerts, the matched item, decide
    /ui/settings        wellness: how strongly previews are blurred, greyscale, muted

Moderators are protected by default: every preview is blurred and greyscale and every video
muted, nothing plays by itself, and each preview is revealed on its own, by a click or `v`.

A moderator logs in with an API key whose role grants "review" (the same roles as the API). The
key itself is never kept in the browser: the cookie holds a token signed with a secret kept in
`home/keys/ui-session.key`, naming the key, checked on every request (a revoked key's sessions
end at once), and carrying a CSRF token every form posts back. Every decision goes through the
same desks as the API, with the actor `key:<name>`, so it lands in the audit log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import mimetypes
import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from firebreak.api.auth import ROLE_PERMISSIONS, firebreak_of
from firebreak.errors import FirebreakError
from firebreak.incidents import IncidentDesk
from firebreak.media.probe import probe_media
from firebreak.reviews import ReviewDesk
from firebreak.service import Firebreak
from firebreak.store import Incident
from firebreak.store.repository import Item
from firebreak.store.reviews import Review

router = APIRouter(prefix="/ui", include_in_schema=False)

_HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(_HERE / "templates"))
_STATIC = {"ui.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8"}

SESSION_COOKIE = "fb_session"
LOGIN_COOKIE = "fb_login"
WELLNESS_COOKIE = "fb_wellness"


def _session_s(request: Request) -> int:
    """How long a review-console login lasts (`ui_session_hours`)."""
    return int(request.app.state.fb.settings.ui_session_hours * 3600)


"""How long a console session lasts before the moderator logs in again (a working shift)."""
BLUR_CHOICES = (0, 8, 16, 24, 32)
_QUEUE_LIMIT = 500
_OPAQUE = "application/octet-stream"
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; media-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


# Sessions


@dataclass(frozen=True)
class UiSession:
    """A logged-in moderator: the key's name and role (as the store has them now)."""

    key_id: str
    name: str
    role: str
    csrf: str
    expires: int

    @property
    def actor(self) -> str:
        return f"key:{self.name}"

    def may(self, permission: str) -> bool:
        return permission in ROLE_PERMISSIONS.get(self.role, frozenset())


@dataclass(frozen=True)
class Wellness:
    """How previews look before they are revealed: a moderator's own setting (a cookie naming
    them; another moderator on the same browser gets the default). Audio always starts muted."""

    blur: int = 24
    """Pixels of blur (BLUR_CHOICES); 0 leaves only the greyscale."""
    grey: bool = True

    def cookie(self, who: str) -> str:
        return urlencode({"who": who, "blur": self.blur, "grey": int(self.grey)})


def _secret(request: Request) -> bytes:
    """The signing secret, shared by every process on the same home (made on first use)."""
    cached: bytes | None = getattr(request.app.state, "ui_secret", None)
    if cached is not None:
        return cached
    path = firebreak_of(request).settings.home / "keys" / "ui-session.key"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{secrets.token_hex(4)}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
        try:
            os.link(partial, path)  # atomic: when another process made one meanwhile, it stands
        except FileExistsError:
            pass
        finally:
            partial.unlink()
    secret = bytes.fromhex(path.read_text().strip())
    request.app.state.ui_secret = secret
    return secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())


def _session_token(request: Request, key_id: str, name: str) -> str:
    body = {
        "k": key_id,
        "n": name,
        "c": secrets.token_urlsafe(24),
        "e": int(time.time()) + _session_s(request),
    }
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    return f"{payload}.{_sign(_secret(request), payload)}"


def current_session(request: Request) -> UiSession | None:
    """The session of the request's cookie: signed by us, not expired, its key still active."""
    token = request.cookies.get(SESSION_COOKIE, "")
    payload, _, signature = token.partition(".")
    if not payload or not signature:
        return None
    if not hmac.compare_digest(signature.encode(), _sign(_secret(request), payload).encode()):
        return None
    try:
        body = json.loads(_unb64(payload))
        key_id, name, csrf, expires = str(body["k"]), str(body["n"]), str(body["c"]), int(body["e"])
    except (ValueError, KeyError, TypeError):
        return None
    if expires < time.time():
        return None
    for key in firebreak_of(request).store.keys.list():
        if key.key_id == key_id and key.name == name and key.active:
            return UiSession(key_id, name, key.role, csrf, expires)
    return None


def _wellness(request: Request, session: UiSession) -> Wellness:
    """This moderator's wellness setting; the protective default when none is set."""
    values = {k: v[-1] for k, v in parse_qs(request.cookies.get(WELLNESS_COOKIE, "")).items()}
    if values.get("who") != session.name:
        return Wellness()
    try:
        blur = int(values.get("blur", "24"))
    except ValueError:
        return Wellness()
    return Wellness(blur if blur in BLUR_CHOICES else 24, values.get("grey", "1") != "0")


# Responses


def _page(
    request: Request,
    template: str,
    context: dict[str, Any],
    session: UiSession | None = None,
    status_code: int = 200,
) -> Response:
    wellness = _wellness(request, session) if session else Wellness()
    response = templates.TemplateResponse(
        request,
        template,
        {"session": session, "wellness": wellness, "flash": None, "error": None} | context,
        status_code=status_code,
    )
    response.headers.update(_SECURITY_HEADERS)
    return response


def _refused(request: Request, session: UiSession) -> Response:
    return _page(
        request,
        "error.html",
        {
            "title": "Not allowed",
            "message": f"The {session.role} role may not use the review console: it needs a key "
            "with the review permission (moderator or admin).",
        },
        session,
        403,
    )


def _to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?{urlencode({'next': target})}", status_code=303)


def _reviewer(request: Request) -> UiSession | Response:
    """The moderator of this page request, or the response that sends anyone else away."""
    session = current_session(request)
    if session is None:
        return _to_login(request)
    if not session.may("review"):
        return _refused(request, session)
    return session


def _media_reviewer(request: Request) -> UiSession | Response:
    session = current_session(request)
    if session is None:
        return Response("log in at /ui/login", status_code=401, headers=_SECURITY_HEADERS)
    if not session.may("review"):
        return Response("not allowed", status_code=403, headers=_SECURITY_HEADERS)
    return session


def _csrf_ok(session: UiSession, token: str) -> bool:
    return bool(token) and hmac.compare_digest(token.encode(), session.csrf.encode())


def _form_reviewer(request: Request, csrf: str) -> UiSession | Response:
    """The moderator posting a form carrying this session's CSRF token, or the response that
    sends anyone else away."""
    session = _reviewer(request)
    if isinstance(session, Response) or _csrf_ok(session, csrf):
        return session
    return _csrf_refused(request, session)


def _not_found(request: Request, session: UiSession, exc: Exception) -> Response:
    return _page(request, "error.html", {"title": "Not found", "message": str(exc)}, session, 404)


def _csrf_refused(request: Request, session: UiSession) -> Response:
    return _page(
        request,
        "error.html",
        {
            "title": "Form expired",
            "message": "This form did not carry this session's token (an old page, or a request "
            "from another site). Nothing was changed. Go back, reload the page, and try again.",
        },
        session,
        403,
    )


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui"


# Login and logout


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in _STATIC:
        return Response("not found", status_code=404)
    return FileResponse(
        _HERE / "static" / name,
        media_type=_STATIC[name],
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


def _login_form(
    request: Request, next_url: str, error: str | None = None, status_code: int = 200
) -> Response:
    nonce = secrets.token_urlsafe(24)
    response = _page(
        request,
        "login.html",
        {
            "next_url": next_url,
            "nonce": nonce,
            "error": error,
            "hours": _session_s(request) // 3600,
        },
        None,
        status_code,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=1800,
        path="/ui/login",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/login")
def login_page(request: Request, next: Annotated[str | None, Query()] = None) -> Response:
    return _login_form(request, _safe_next(next))


@router.post("/login")
def login(
    request: Request,
    key: Annotated[str, Form(max_length=500)] = "",
    nonce: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/ui",
) -> Response:
    target = _safe_next(next)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(nonce.encode(), expected.encode()):
        return _login_form(request, target, "The form expired; please log in again.", 400)
    fb = firebreak_of(request)
    found = fb.store.keys.verify(key.strip())
    if found is None:
        return _login_form(request, target, "That key is not valid (or has been revoked).", 401)
    if "review" not in ROLE_PERMISSIONS.get(found.role, frozenset()):
        return _login_form(
            request,
            target,
            f"The {found.role} role may not use the review console: it needs a key with the "
            "review permission (moderator or admin).",
            403,
        )
    fb.store.audit.append(f"key:{found.name}", "ui.login", f"key:{found.name}", "review console")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        _session_token(request, found.key_id, found.name),
        max_age=_session_s(request),
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/ui/login", httponly=True, samesite="strict")
    return response


@router.api_route("/logout", methods=["GET", "POST"])
def logout() -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


# The queue


@dataclass(frozen=True)
class QueueRow:
    """One thing to review, of either kind, as the queue lists it."""

    kind: str  # "upload" or "live"
    ref: str
    url: str
    subject: str
    level: str
    score: float
    top: str
    opened: datetime
    status: str
    rank: int

    @property
    def age(self) -> str:
        return _age(self.opened)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _age(at: datetime) -> str:
    seconds = max(0, int((datetime.now(UTC) - _aware(at)).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _review_row(review: Review) -> QueueRow:
    top = review.matches[0] if review.matches else {}
    return QueueRow(
        "upload",
        f"review:{review.id}",
        f"/ui/review/{review.id}",
        review.subject,
        review.verdict,
        review.score,
        f"{top.get('bank')} / {top.get('item')}" if top else "—",
        review.created_at,
        review.status,
        1 if review.verdict == "match" else 0,
    )


def _incident_row(incident: Incident) -> QueueRow:
    return QueueRow(
        "live",
        f"incident:{incident.name}",
        f"/ui/incident/{quote(incident.name, safe='')}",
        f"{incident.name} ({incident.stream})",
        incident.level,
        incident.max_score,
        f"{incident.bank} / {incident.item}" if incident.bank else incident.source,
        incident.opened_at,
        incident.status,
        1 if incident.level == "alert" else 0,
    )


QUEUES = {
    "open": ("open", "escalated"),
    "escalated": ("escalated",),
    "decided": ("confirmed", "rejected"),
}


def _queue(fb: Firebreak, statuses: tuple[str, ...]) -> list[QueueRow]:
    """Uploads and live incidents together, riskiest first: matches and alerts before
    review-level items, then by score, then the oldest first."""
    rows = [_review_row(r) for r in fb.store.reviews.queue(statuses, _QUEUE_LIMIT)]
    rows += [_incident_row(i) for i in fb.store.incidents.queue(statuses, _QUEUE_LIMIT)]
    if "confirmed" in statuses:  # the decided: the newest first
        return sorted(rows, key=lambda r: _aware(r.opened), reverse=True)
    return sorted(rows, key=lambda r: (-r.rank, -r.score, _aware(r.opened), r.ref))


def _neighbours(fb: Firebreak, ref: str) -> tuple[str | None, str | None]:
    """The previous and next items' pages in the open queue (`j`/`k`)."""
    rows = _queue(fb, QUEUES["open"])
    refs = [r.ref for r in rows]
    if ref not in refs:
        return None, rows[0].url if rows else None
    at = refs.index(ref)
    prev = rows[at - 1].url if at > 0 else None
    nxt = rows[at + 1].url if at + 1 < len(rows) else None
    return prev, nxt


def _flash(fb: Firebreak, done: str | None) -> str | None:
    """The line that tells the moderator what their last decision did."""
    if not done:
        return None
    kind, _, ref = done.partition(":")
    try:
        if kind == "review":
            review = fb.store.reviews.get(int(ref))
            line = f"Upload {review.id} ({review.subject}) {review.status}"
            if review.banked_bank:
                line += f": banked into {review.banked_bank} as {review.banked_item}"
            return line + "."
        if kind == "incident":
            incident = fb.store.incidents.get(ref)
            line = f"Incident {incident.name} {incident.status}"
            if incident.banked_bank:
                line += f": recording banked into {incident.banked_bank}"
            return line + "."
    except (FirebreakError, ValueError):
        return None
    return None


@router.get("")
def queue(
    request: Request,
    view: Annotated[str, Query(alias="queue")] = "open",
    done: Annotated[str | None, Query(max_length=300)] = None,
) -> Response:
    session = _reviewer(request)
    if isinstance(session, Response):
        return session
    fb = firebreak_of(request)
    view = view if view in QUEUES else "open"
    rows = _queue(fb, QUEUES[view])
    return _page(
        request,
        "queue.html",
        {"rows": rows, "view": view, "views": list(QUEUES), "flash": _flash(fb, done)},
        session,
    )


# An upload held for review


def _media_kind(path: str | None) -> str:
    kind = mimetypes.guess_type(path or "")[0] or ""
    return "image" if kind.startswith("image/") else "video"


def _duration(fb: Firebreak, path: str | None) -> float | None:
    if not path or not Path(path).is_file():
        return None
    try:
        return probe_media(Path(path), fb.settings).duration_s
    except FirebreakError:
        return None


def _segment(value: Any) -> tuple[float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 2:
        try:
            return float(value[0]), float(value[1])
        except (TypeError, ValueError):
            return None
    return None


def _signals_text(signals: Any) -> list[str]:
    """One short line per signal a match rests on."""
    if not isinstance(signals, dict):
        return []
    lines = []
    for name, detail in signals.items():
        if isinstance(detail, dict):
            parts = [f"{k} {_value_text(v)}" for k, v in detail.items() if k != "score"]
            lines.append(f"{name}: {', '.join(parts)}" if parts else str(name))
        else:
            lines.append(f"{name}: {detail}")
    return lines


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return str(round(value, 3))
    if isinstance(value, dict):  # e.g. the views a copy matched in: {"frame_mirror": 37}
        return " ".join(f"{k}={_value_text(v)}" for k, v in value.items())
    return str(value)


@dataclass(frozen=True)
class Bar:
    """A segment on a timeline: where it starts and how wide it is, in % of the timeline."""

    left: float
    width: float
    start: float
    end: float


def _bar(segment: tuple[float, float] | None, length: float | None) -> Bar | None:
    if segment is None:
        return None
    start, end = segment
    span = max(length or 0.0, end, 1e-6)
    left = min(100.0, max(0.0, 100.0 * start / span))
    return Bar(round(left, 2), round(max(0.8, 100.0 * (end - start) / span), 2), start, end)


def _matches(review: Review) -> list[dict[str, Any]]:
    rows = []
    for index, match in enumerate(review.matches):
        query = _segment(match.get("query_segment"))
        item = _segment(match.get("item_segment"))
        rows.append(
            {
                "index": index,
                "bank": str(match.get("bank", "")),
                "item": str(match.get("item", "")),
                "score": float(match.get("score") or 0.0),
                "signals": _signals_text(match.get("signals")),
                "query": query,
                "item_segment": item,
            }
        )
    return rows


def _item_media_url(bank: str, item: str) -> str:
    return f"/ui/media/item?{urlencode({'bank': bank, 'item': item})}"


def _bank_item(fb: Firebreak, bank: str, name: str) -> Item | None:
    try:
        return fb.store.item(bank, name)
    except FirebreakError:
        return None


def _review_page(
    request: Request,
    session: UiSession,
    review: Review,
    selected: int = 0,
    error: str | None = None,
    status_code: int = 200,
    done: str | None = None,
) -> Response:
    fb = firebreak_of(request)
    matches = _matches(review)
    chosen = matches[selected] if 0 <= selected < len(matches) else None
    item = _bank_item(fb, chosen["bank"], chosen["item"]) if chosen else None
    item_kept = bool(item and item.source_file and Path(item.source_file).is_file())
    query_length = _duration(fb, review.media)
    item_length = item.duration_s if item else None
    prev, nxt = _neighbours(fb, f"review:{review.id}")
    banks = fb.list_banks()
    return _page(
        request,
        "review.html",
        {
            "review": review,
            "age": _age(review.created_at),
            "matches": matches,
            "chosen": chosen,
            "item": item,
            "query_url": f"/ui/media/review/{review.id}",
            "query_kind": _media_kind(review.media),
            "query_kept": bool(review.media and Path(review.media).is_file()),
            "item_url": _item_media_url(chosen["bank"], chosen["item"]) if chosen else None,
            "item_kind": item.media_kind if item else "video",
            "item_kept": item_kept,
            "query_length": query_length,
            "item_length": item_length,
            "query_bar": _bar(chosen["query"], query_length) if chosen else None,
            "item_bar": _bar(chosen["item_segment"], item_length) if chosen else None,
            "block_banks": [b.name for b in banks if b.kind == "block"],
            "allow_banks": [b.name for b in banks if b.kind == "allow"],
            "default_bank": matches[0]["bank"] if matches else "confirmed",
            "open": review.status in ("open", "escalated"),
            "audit": fb.store.audit.entries(f"review:{review.id}", 50),
            "prev": prev,
            "next": nxt,
            "error": error,
            "flash": _flash(fb, done),
        },
        session,
        status_code,
    )


@router.get("/review/{review_id}")
def review_page(
    request: Request,
    review_id: int,
    match: Annotated[int, Query(ge=0, le=1000)] = 0,
    done: Annotated[str | None, Query(max_length=300)] = None,
) -> Response:
    session = _reviewer(request)
    if isinstance(session, Response):
        return session
    try:
        review = firebreak_of(request).store.reviews.get(review_id)
    except FirebreakError as exc:
        return _not_found(request, session, exc)
    return _review_page(request, session, review, match, done=done)


def _after_decision(request: Request, done: str) -> Response:
    """On to the riskiest item still open, telling what was done."""
    _, nxt = _neighbours(firebreak_of(request), done)
    target = nxt or "/ui"
    return RedirectResponse(f"{target}?{urlencode({'done': done})}", status_code=303)


@router.post("/review/{review_id}/decision")
def decide_review(
    request: Request,
    review_id: int,
    csrf: Annotated[str, Form(max_length=200)] = "",
    decision: Annotated[str, Form(max_length=20)] = "",
    note: Annotated[str, Form(max_length=5000)] = "",
    bank: Annotated[str, Form(max_length=200)] = "",
    allow: Annotated[str, Form(max_length=10)] = "",
    allow_bank: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    session = _form_reviewer(request, csrf)
    if isinstance(session, Response):
        return session
    fb = firebreak_of(request)
    desk = ReviewDesk(fb)
    try:
        with request.app.state.lock:
            if decision == "confirm":
                desk.confirm(review_id, session.actor, bank.strip() or None, note)
            elif decision == "reject":
                chosen = allow_bank.strip() if allow else ""
                desk.reject(review_id, session.actor, note, chosen or None)
            elif decision == "escalate":
                desk.escalate(review_id, session.actor, note)
            else:
                raise ValueError(f"unknown decision {decision!r}")
    except (FirebreakError, ValueError) as exc:
        try:
            review = fb.store.reviews.get(review_id)
        except FirebreakError:
            return _not_found(request, session, exc)
        return _review_page(request, session, review, error=str(exc), status_code=409)
    return _after_decision(request, f"review:{review_id}")


# A live incident


def _incident_page(
    request: Request,
    session: UiSession,
    incident: Incident,
    error: str | None = None,
    status_code: int = 200,
    done: str | None = None,
) -> Response:
    fb = firebreak_of(request)
    item = _bank_item(fb, incident.bank, incident.item or "") if incident.bank else None
    frames = [
        {
            "url": f"/ui/media/incident/{quote(incident.name, safe='')}?"
            + urlencode({"frame": alert.frame}),
            "at": alert.stream_time,
        }
        for alert in incident.alerts
        if alert.frame
    ]
    alerts = [
        {
            "at": alert.stream_time,
            "source": alert.source,
            "level": alert.level,
            "match": f"{alert.bank} / {alert.item}" if alert.bank else "—",
            "score": alert.score,
            "signals": _signals_text(alert.signals),
            "actions": ", ".join(f"{k}: {v}" for k, v in alert.actions.items()),
        }
        for alert in incident.alerts
    ]
    prev, nxt = _neighbours(fb, f"incident:{incident.name}")
    banks = fb.list_banks()
    return _page(
        request,
        "incident.html",
        {
            "incident": incident,
            "age": _age(incident.opened_at),
            "frames": frames,
            "latest": frames[-1] if frames else None,
            "alerts": alerts,
            "item": item,
            "item_url": _item_media_url(item.bank, item.name) if item else None,
            "item_kept": bool(item and item.source_file and Path(item.source_file).is_file()),
            "block_banks": [b.name for b in banks if b.kind == "block"],
            "default_bank": incident.bank or "incidents",
            "open": incident.status in ("open", "escalated", "confirmed"),
            "audit": fb.store.audit.entries(f"incident:{incident.name}", 50),
            "prev": prev,
            "next": nxt,
            "error": error,
            "flash": _flash(fb, done),
        },
        session,
        status_code,
    )


@router.get("/incident/{name}")
def incident_page(
    request: Request, name: str, done: Annotated[str | None, Query(max_length=300)] = None
) -> Response:
    session = _reviewer(request)
    if isinstance(session, Response):
        return session
    try:
        incident = firebreak_of(request).store.incidents.get(name)
    except FirebreakError as exc:
        return _not_found(request, session, exc)
    return _incident_page(request, session, incident, done=done)


@router.post("/incident/{name}/decision")
def decide_incident(
    request: Request,
    name: str,
    csrf: Annotated[str, Form(max_length=200)] = "",
    decision: Annotated[str, Form(max_length=20)] = "",
    note: Annotated[str, Form(max_length=5000)] = "",
    bank: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    session = _form_reviewer(request, csrf)
    if isinstance(session, Response):
        return session
    fb = firebreak_of(request)
    desk = IncidentDesk(fb)
    try:
        with request.app.state.lock:
            if decision == "confirm":
                desk.confirm(name, bank.strip() or "incidents", session.actor, note)
            elif decision == "reject":
                desk.reject(name, session.actor, note)
            elif decision == "escalate":
                desk.escalate(name, session.actor, note)
            else:
                raise ValueError(f"unknown decision {decision!r}")
    except (FirebreakError, ValueError) as exc:
        try:
            incident = fb.store.incidents.get(name)
        except FirebreakError:
            return _not_found(request, session, exc)
        return _incident_page(request, session, incident, error=str(exc), status_code=409)
    return _after_decision(request, f"incident:{name}")


# Media, for logged-in moderators only


def _file(path: str | None) -> Response:
    if not path or not Path(path).is_file():
        return Response("this media is no longer kept", status_code=404, headers=_SECURITY_HEADERS)
    kind = mimetypes.guess_type(path)[0] or ""
    return FileResponse(
        path,
        media_type=kind if kind.split("/")[0] in ("video", "image", "audio") else _OPAQUE,
        headers={
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


@router.get("/media/review/{review_id}")
def review_media(request: Request, review_id: int) -> Response:
    session = _media_reviewer(request)
    if isinstance(session, Response):
        return session
    try:
        review = firebreak_of(request).store.reviews.get(review_id)
    except FirebreakError:
        return Response("not found", status_code=404)
    return _file(review.media)


@router.get("/media/item")
def item_media(
    request: Request,
    bank: Annotated[str, Query(max_length=200)],
    item: Annotated[str, Query(max_length=500)],
) -> Response:
    session = _media_reviewer(request)
    if isinstance(session, Response):
        return session
    try:
        found = firebreak_of(request).store.item(bank, item)
    except FirebreakError:
        return Response("not found", status_code=404)
    return _file(found.source_file)


@router.get("/media/incident/{name}")
def incident_frame(
    request: Request, name: str, frame: Annotated[str, Query(max_length=300)]
) -> Response:
    session = _media_reviewer(request)
    if isinstance(session, Response):
        return session
    fb = firebreak_of(request)
    try:
        incident = fb.store.incidents.get(name)
        folder = IncidentDesk(fb).folder(name)
    except FirebreakError:
        return Response("not found", status_code=404)
    if frame not in {a.frame for a in incident.alerts if a.frame}:  # only the recorded grabs
        return Response("not found", status_code=404)
    return _file(str(folder / frame))


# Wellness settings


@router.get("/settings")
def settings_page(request: Request) -> Response:
    session = _reviewer(request)
    if isinstance(session, Response):
        return session
    saved = "Saved." if request.query_params.get("saved") else None
    return _page(request, "settings.html", {"choices": BLUR_CHOICES, "flash": saved}, session)


@router.post("/settings")
def save_settings(
    request: Request,
    csrf: Annotated[str, Form(max_length=200)] = "",
    blur: Annotated[int, Form()] = 24,
    grey: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    session = _form_reviewer(request, csrf)
    if isinstance(session, Response):
        return session
    chosen = Wellness(blur if blur in BLUR_CHOICES else 24, bool(grey))
    response = RedirectResponse("/ui/settings?saved=1", status_code=303)
    response.set_cookie(
        WELLNESS_COOKIE,
        chosen.cookie(session.name),
        max_age=365 * 86400,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response
