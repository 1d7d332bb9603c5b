"""``trainer review``: serve the review page for one line until stopped."""

from __future__ import annotations

import signal
import threading

from trainer.review.page import ReviewPage
from trainer.review.queue import ReviewQueue


def serve_review(settings) -> int:
    queue = ReviewQueue(settings.amqp_url.get_secret_value(), settings.tls_files(), settings.line_id)
    page = ReviewPage(queue, settings.out, settings.port)
    print(f"reviewing line {settings.line_id}: http://<this host>:{page.port}/ (labels into {settings.out})")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    page.close()
    queue.close()
    print(f"{page.labelled} items labelled")
    return 0
