"""The live view: a web page of the belt, each item boxed with its id, bin and confidence.

``/`` is the page, ``/stream.mjpg`` the annotated frames as MJPEG (multipart/x-mixed-replace, which
every browser shows in an ``<img>``), ``/items.json`` the items decided lately, which the page polls.
It is for people beside the line: frames are scaled down and sent at most ``max_fps`` a second, so
watching costs the camera little.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer

from sortline.http_handler import QuietHandler

log = logging.getLogger(__name__)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sortline: {title}</title>
<style>
 body {{ font-family: system-ui, sans-serif; margin: 1rem; background: #111; color: #eee; }}
 main {{ display: flex; gap: 1rem; align-items: flex-start; }}
 img {{ max-width: 70vw; border: 1px solid #444; }}
 table {{ border-collapse: collapse; font-variant-numeric: tabular-nums; }}
 td, th {{ padding: 0.2rem 0.6rem; border-bottom: 1px solid #333; text-align: left; }}
 .residual {{ color: #aaa; }} .hazard {{ color: #f55; font-weight: bold; }}
</style></head>
<body><h1>{title}</h1>
<main><img id="belt" src="/stream.mjpg" alt="the belt, live">
<div><p id="status">waiting for items</p>
<table><thead><tr><th>item</th><th>bin</th><th>confidence</th><th>reason</th><th>latency</th></tr></thead>
<tbody id="items"></tbody></table></div></main>
<script>
async function refresh() {{
  try {{
    const state = await (await fetch("/items.json", {{cache: "no-store"}})).json();
    document.getElementById("status").textContent =
      `${{state.fps.toFixed(1)}} fps, ${{state.items.length}} items decided lately`;
    const rows = state.items.map(d =>
      `<tr class="${{d.bin}}" data-item="${{d.item_id}}"><td>${{d.item_id}}</td>` +
      `<td class="bin">${{d.bin}}</td>` +
      `<td>${{d.confidence_shown}}</td><td>${{d.why}}</td>` +
      `<td>${{d.latency_ms.toFixed(0)}} ms</td></tr>`);
    document.getElementById("items").innerHTML = rows.join("");
  }} catch (error) {{ document.getElementById("status").textContent = "camera agent unreachable"; }}
}}
setInterval(refresh, 200); refresh();
</script></body></html>
"""


class LiveServer:
    """Serves the newest annotated JPEG to every viewer, and the recent decisions."""

    def __init__(self, port: int, title: str, state: Callable[[], dict]) -> None:
        self._frame: bytes | None = None
        self._changed = threading.Condition()
        self._closed = False
        self._page = PAGE.format(title=title).encode()
        self._state = state
        self._server = ThreadingHTTPServer(("0.0.0.0", port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="live-view", daemon=True).start()
        log.info("live view on http://<this host>:%d/", self.port)

    def publish(self, jpeg: bytes) -> None:
        with self._changed:
            self._frame = jpeg
            self._changed.notify_all()

    def next_frame(self, previous: bytes | None, timeout: float = 1.0) -> bytes | None:
        with self._changed:
            if self._frame is previous and not self._closed:
                self._changed.wait(timeout)
            return None if self._closed else self._frame

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[QuietHandler]:
        live = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                if self.path == "/":
                    self.send_body(200, "text/html; charset=utf-8", live._page)
                elif self.path == "/items.json":
                    self.send_body(200, "application/json", json.dumps(live._state()).encode())
                elif self.path == "/stream.mjpg":
                    self._stream()
                else:
                    self.send_body(404, "text/plain", b"not found")

            def _stream(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                frame = None
                try:
                    while (frame := live.next_frame(frame)) is not None:
                        head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(
                            frame
                        )
                        self.wfile.write(head + frame + b"\r\n")
                except OSError:
                    pass  # the viewer went away

        return Handler
