"""An MJPEG-over-HTTP camera (multipart/x-mixed-replace, as IP cameras serve it) that can be
stopped and started again on the same port, for tests of a live source that goes away."""

from __future__ import annotations

import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler

import cv2
import numpy as np

from sortline_dev.processes import free_port


class MjpegCamera:
    """Serves ``fps`` numbered frames a second at ``url`` while started."""

    def __init__(self, fps: float = 30.0, size: tuple[int, int] = (320, 240)) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/stream.mjpg"
        self.fps, self.size = fps, size
        self.served = 0
        self._server: socketserver.ThreadingTCPServer | None = None
        self._running = threading.Event()

    def _frame(self) -> bytes:
        image = np.full((self.size[1], self.size[0], 3), (self.served * 5) % 255, dtype=np.uint8)
        cv2.putText(image, str(self.served), (10, 100), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        return cv2.imencode(".jpg", image)[1].tobytes()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        camera = self

        class Stream(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while camera._running.is_set():
                        jpeg = camera._frame()
                        camera.served += 1
                        part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(
                            jpeg
                        )
                        self.wfile.write(part + jpeg + b"\r\n")
                        time.sleep(1 / camera.fps)
                except OSError:
                    pass  # the client went away
                self.close_connection = True

            def log_message(self, *_args: object) -> None:
                pass

        return Stream

    def start(self) -> MjpegCamera:
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self._running.set()
        threading.Thread(target=self._server.serve_forever, name="mjpeg", daemon=True).start()
        return self

    def stop(self) -> None:
        """The camera is gone: no new connections, open streams end."""
        self._running.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
