// Firebreak review console: reveal one preview at a time, seek both videos to an aligned
// segment, keyboard shortcuts. No autoplay, no framework.
"use strict";

function reveal(figure, on) {
  if (!figure) return;
  const shown = on === undefined ? figure.classList.contains("veiled") : on;
  figure.classList.toggle("veiled", !shown);
  const button = figure.querySelector("button.reveal");
  if (button) {
    button.setAttribute("aria-pressed", String(shown));
    button.textContent = (shown ? "Veil" : "Reveal") + (figure.dataset.slot ? " (" + figure.dataset.slot + ")" : "");
  }
}

function mainPreviews() {
  return Array.from(document.querySelectorAll(".compare figure.media[data-slot]"));
}

function videos() {
  return mainPreviews().map((f) => f.querySelector("video")).filter(Boolean);
}

function seek(queryTime, itemTime) {
  const q = document.querySelector("#media-query video");
  const i = document.querySelector("#media-item video");
  if (q && !Number.isNaN(queryTime)) q.currentTime = queryTime;
  if (i && !Number.isNaN(itemTime)) i.currentTime = itemTime;
}

function click(id) {
  const el = document.getElementById(id);
  if (el) el.click();
}

function go(url) {
  if (url) window.location.assign(url);
}

function moveRow(step) {
  const rows = Array.from(document.querySelectorAll("table.queue tbody tr"));
  if (!rows.length) return;
  let at = rows.findIndex((r) => r.classList.contains("selected"));
  if (at >= 0) rows[at].classList.remove("selected");
  at = Math.min(rows.length - 1, Math.max(0, at + step));
  rows[at].classList.add("selected");
  rows[at].scrollIntoView({ block: "nearest" });
}

document.addEventListener("click", (event) => {
  const target = event.target instanceof Element ? event.target : null;
  if (!target) return;
  const revealer = target.closest("[data-reveal]");
  if (revealer) return reveal(document.getElementById(revealer.dataset.reveal));
  const player = target.closest("[data-play]");
  if (player) {
    const video = document.querySelector("#" + player.dataset.play + " video");
    if (video) video.paused ? video.play() : video.pause();
    return;
  }
  const seeker = target.closest("[data-seek-query]");
  if (seeker) return seek(parseFloat(seeker.dataset.seekQuery), parseFloat(seeker.dataset.seekItem));
  const row = target.closest("table.queue tbody tr[data-href]");
  if (row && !target.closest("a")) go(row.dataset.href);
});

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const t = event.target;
  if (t instanceof HTMLElement && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) {
    if (event.key === "Escape") t.blur();
    return;
  }
  const help = document.getElementById("help");
  const page = document.body.dataset.page;
  let handled = true;
  switch (event.key) {
    case "?": if (help) help.hidden = !help.hidden; break;
    case "Escape": if (help) help.hidden = true; break;
    case "j": page === "queue" ? moveRow(1) : go(document.body.dataset.next); break;
    case "k": page === "queue" ? moveRow(-1) : go(document.body.dataset.prev); break;
    case "q": go("/ui"); break;
    case "o": case "Enter": {
      const row = document.querySelector("table.queue tbody tr.selected");
      if (row) go(row.dataset.href); else handled = false;
      break;
    }
    case "v": {
      const previews = mainPreviews();
      const anyVeiled = previews.some((f) => f.classList.contains("veiled"));
      previews.forEach((f) => reveal(f, anyVeiled));
      break;
    }
    case "1": reveal(document.getElementById("media-query")); break;
    case "2": reveal(document.getElementById("media-item")); break;
    case "p": {
      const vs = videos();
      const playing = vs.some((v) => !v.paused);
      vs.forEach((v) => (playing ? v.pause() : v.play()));
      break;
    }
    case "n": { const note = document.getElementById("note"); if (note) note.focus(); break; }
    case "c": click("confirm"); break;
    case "r": click("reject"); break;
    case "e": click("escalate"); break;
    default: handled = false;
  }
  if (handled) event.preventDefault();
});
