"""A plant site on the real broker: its vhost, users and topology imported from the definitions
that deploy/ ships (``sortline.broker_definitions``), under names no other test uses.

``rabbitmqctl import_definitions`` loads them as RabbitMQ loads them at boot; afterwards the
vhost and every user are deleted again, so the shared broker keeps nothing.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pika
import pytest

from sortline.broker_definitions import LINE_ROLES, SITE_ROLES, site_definitions

RABBITMQCTL = shutil.which("rabbitmqctl")


@dataclass(frozen=True)
class Site:
    """An imported site: a URL per user (``url("camera", line)``, ``url("trainer")``)."""

    name: str
    lines: tuple[str, ...]
    broker_url: str  # the test broker's own URL, for host and port
    passwords: dict[str, str]

    def user(self, role: str, line: str | None = None) -> str:
        if role in LINE_ROLES:
            assert line is not None, f"the {role} role belongs to a line"
            return LINE_ROLES[role](self.name, line).user
        return SITE_ROLES[role](self.name).user

    def url(self, role: str, line: str | None = None) -> str:
        user = self.user(role, line)
        parts = urlsplit(self.broker_url)
        netloc = f"{user}:{self.passwords[user]}@{parts.hostname}:{parts.port or 5672}"
        return urlunsplit(parts._replace(netloc=netloc, path=f"/{self.name}"))

    def connect(self, role: str, line: str | None = None) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.URLParameters(self.url(role, line)))


def _fill_passwords(definitions: dict) -> dict[str, str]:
    passwords = {}
    for user in definitions["users"]:
        passwords[user["name"]] = user["password"] = secrets.token_urlsafe(18)
    return passwords


def _wait_for_import(site: Site, definitions: dict, timeout: float = 60.0) -> None:
    """``import_definitions`` returns before the import is done; bindings come last, so wait for
    every binding, then for the admin's login."""
    deadline = time.monotonic() + timeout
    expected = len(definitions["bindings"])
    while True:
        listed = subprocess.run(
            [RABBITMQCTL, "-q", "--no-table-headers", "list_bindings", "-p", site.name, "destination_name"],
            capture_output=True, text=True, timeout=60, check=False,
        ).stdout.split()  # fmt: skip
        # Every queue also has its default-exchange binding: count only the named ones.
        if sum(name.startswith("sortline.") for name in listed) >= expected + len(definitions["queues"]):
            break
        assert time.monotonic() < deadline, f"the definitions of {site.name} were not imported in time"
        time.sleep(0.3)
    site.connect("admin").close()


@contextmanager
def imported_site(broker_url: str, lines: Sequence[str] = ("line-1", "line-2")) -> Iterator[Site]:
    """A fresh site with ``lines`` on the broker at ``broker_url``, removed afterwards."""
    if RABBITMQCTL is None:
        pytest.fail("rabbitmqctl is needed to import a site's definitions", pytrace=False)
    name = f"t-{uuid.uuid4().hex[:8]}"
    definitions = site_definitions(name, lines)
    site = Site(name, tuple(lines), broker_url, _fill_passwords(definitions))
    try:
        # Through stdin: the broker node, not this user, would read a file path.
        imported = subprocess.run(
            [RABBITMQCTL, "-q", "import_definitions", "--format", "json"],
            input=json.dumps(definitions), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert imported.returncode == 0, f"import_definitions: {imported.stderr}"
        _wait_for_import(site, definitions)
        yield site
    finally:
        subprocess.run([RABBITMQCTL, "-q", "delete_vhost", name], capture_output=True, timeout=120)
        for user in site.passwords:
            subprocess.run([RABBITMQCTL, "-q", "delete_user", user], capture_output=True, timeout=120)
