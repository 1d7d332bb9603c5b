"""The one HTTP handler base that every small built-in page of Sortline answers with.

Metrics and health endpoints, the live view and the review page all answer whole bodies with a
length and keep the access log quiet (probes and page polls every second are not worth a line).
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler


class QuietHandler(BaseHTTPRequestHandler):
    """``send_body`` for a whole answer; no access log."""

    def send_body(self, status: int, content_type: str, body: bytes) -> None:
        """Answer ``body`` whole, never cached: every page here changes between two requests."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass
