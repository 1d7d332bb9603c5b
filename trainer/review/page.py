"""The review page: one item at a time, its views and what the line decided; one key per label.

Keyboard first: the page names each label's key (``g`` glass, ``p`` paper, ...), ``Enter``
confirms what the line took the item for, ``space`` skips an item nobody could label (it leaves the
queue without a file), and each answer brings the next.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path

from sortline.http_handler import QuietHandler
from sortline.labels import DATA_LABELS
from trainer.review.queue import ReviewItem, ReviewQueue

log = logging.getLogger(__name__)

#: The key of each label: its initial where free, else the one people expect.
PREFERRED_KEYS = {"plastic": "l", "textile": "x", "recyclable": "r"}
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def label_keys(labels: tuple[str, ...] = DATA_LABELS) -> dict[str, str]:
    """key -> label, one letter each; every bin has a label (``b`` battery for the hazard bin)."""
    keys: dict[str, str] = {}
    for label in labels:
        key = PREFERRED_KEYS.get(label, label[0])
        if key in keys:  # a clash: the label's next unused letter
            key = next(c for c in label if c not in keys)
        keys[key] = label
    return keys


def writer(out: Path) -> Callable[[ReviewItem, str], list[Path]]:
    """Writes an item's views into the labelled-data layout ``OUT/<label>/*`` that `trainer train` reads."""

    def write(item: ReviewItem, label: str) -> list[Path]:
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ".png" if item.content_type == "image/png" else ".jpg"
        stem = _SAFE.sub("_", item.message_id)
        paths = []
        for index, view in enumerate(item.views):
            path = folder / f"{stem}-{index}{suffix}"
            path.write_bytes(view)
            paths.append(path)
        return paths

    return write


class ReviewPage:
    def __init__(self, queue: ReviewQueue, out: Path, port: int) -> None:
        self.queue, self.keys = queue, label_keys()
        self._write = writer(out)
        self.labelled = self.skipped = 0
        self._server = ThreadingHTTPServer(("0.0.0.0", port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="review-page", daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def next_item(self) -> dict:
        item = self.queue.next()
        if item is None:
            return {"item": None, "labelled": self.labelled, "skipped": self.skipped}
        views = [f"data:{item.content_type};base64,{base64.b64encode(v).decode()}" for v in item.views]
        return {"item": {"key": item.key, "why": item.why, "views": views, "decision": item.decision,
                         "shadow": item.shadow}, "labelled": self.labelled,
                "skipped": self.skipped}  # fmt: skip

    def answer(self, key: str, label: str | None) -> bool:
        """A label (written, then acked) or None (skipped: acked without a file)."""
        if label is not None and label not in self.keys.values():
            return False
        done = self.queue.settle(key, None if label is None else lambda item: self._write(item, label))
        self.labelled += bool(done and label)
        self.skipped += bool(done and not label)
        return done

    def _handler(self) -> type[QuietHandler]:
        page = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                if self.path == "/":
                    self.send_body(200, "text/html; charset=utf-8", render_page(page.keys).encode())
                elif self.path == "/next":
                    self.send_body(200, "application/json", json.dumps(page.next_item()).encode())
                else:
                    self.send_body(404, "text/plain", b"not found")

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                done = page.answer(str(body.get("key")), body.get("label"))
                self.send_body(200 if done else 409, "application/json", json.dumps({"done": done}).encode())

        return Handler


def render_page(keys: dict[str, str]) -> str:
    legend = " ".join(f"<kbd>{key}</kbd> {label}" for key, label in keys.items())
    return PAGE.replace("{{LEGEND}}", legend).replace("{{KEYS}}", json.dumps(keys))


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sortline review</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 1rem; }
 #views img { max-height: 40vh; margin-right: 0.5rem; border: 1px solid #999; }
 kbd { border: 1px solid #888; border-radius: 3px; padding: 0 0.3rem; background: #eee; }
 #status { color: #555; }
</style></head>
<body>
<h1>Review</h1>
<p id="legend">{{LEGEND}} &nbsp; <kbd>Enter</kbd> confirm the line's answer &nbsp; <kbd>space</kbd> skip</p>
<p id="status">loading</p>
<div id="views"></div>
<p id="decision"></p>
<p id="confirm"></p>
<script>
const KEYS = {{KEYS}};
let current = null;
async function load() {
  const state = await (await fetch("/next", {cache: "no-store"})).json();
  current = state.item;
  const done = `${state.labelled} labelled, ${state.skipped} skipped`;
  document.getElementById("status").textContent =
    current ? `${done}; this one: ${current.why}` : `${done}; nothing to review`;
  document.getElementById("views").innerHTML = current
    ? current.views.map(src => `<img src="${src}" alt="a view of the item">`).join("") : "";
  const d = current ? current.decision : null;
  document.getElementById("decision").textContent = d
    ? `line decided: ${d.bin} (${d.material ?? "organic"}, confidence ${Number(d.confidence).toFixed(4)})` +
      (current.shadow ? `; candidate: ${current.shadow.bin}` : "") : "";
  document.getElementById("confirm").textContent = d ? `Enter: ${confirmed(d)}` : "";
  if (!current) setTimeout(load, 1000);
}
// What the line took the item for, as a label: a battery (hazard bin), its material, or organic.
function confirmed(d) { return d.bin === "hazard" ? "battery" : (d.material ?? "organic"); }
async function answer(label) {
  if (!current) return;
  const key = current.key;
  current = null;
  await fetch("/label", {method: "POST", headers: {"Content-Type": "application/json"},
                         body: JSON.stringify({key: key, label: label})});
  load();
}
document.addEventListener("keydown", event => {
  if (event.key === " ") { event.preventDefault(); answer(null); }
  else if (event.key === "Enter" && current && current.decision.bin) answer(confirmed(current.decision));
  else if (KEYS[event.key]) answer(KEYS[event.key]);
});
load();
</script></body></html>
"""
