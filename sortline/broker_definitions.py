"""A site's RabbitMQ definitions: its vhost, one user per role, their rights, and the topology.

Each role gets only what its process does, so a stolen password is worth little:

- camera (one user per line): publish to ``sortline.frames`` with the key ``frames.<line>.<camera>``
  only. It reads no queue, declares, deletes or purges nothing, and cannot publish to another
  line, to the decisions or to the model events.
- worker (per line): consume ``sortline.frames.<line>``; publish decisions ``decisions.<line>.*``
  and dead letters of its own line's frames; declare its own model-events queue. It cannot
  publish frames or promotions, nor touch another line's queues or the shared ones.
- ejector bridge (per line): consume ``sortline.decisions.<line>``; nothing else.
- trainer (per site): publish ``ModelPromoted`` on ``sortline.models``; nothing else.
- monitor (per site): tag ``monitoring``, the management API's read-only views (KEDA,
  dashboards); no AMQP resource.
- admin (per site): everything in the site's vhost, for operators.

Roles without a configure right cannot declare what they use, so the exchanges, queues and
bindings are part of the definitions the broker imports at boot, built here from
:mod:`sortline.topology` so that they carry exactly the arguments the processes would declare.
Such processes run with ``--topology check`` (they only check that it exists).

``python -m sortline.broker_definitions --site site-a --lines line-1 line-2`` prints the
definitions; passwords are ``@@secret:<name>@@`` tokens that ``deploy/compose/rabbitmq/
render-definitions.sh`` fills from secret files (see :func:`password_secret`). ``--template``
prints :func:`site_template`, one site with one line whose names are tokens too, which the same
script fills from the site's parameters (``deploy/site/site.env``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sortline.topology import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    DECISIONS_EXCHANGE,
    FRAMES_EXCHANGE,
    MODEL_EVENTS_EXCHANGE,
    REVIEW_EXCHANGE,
    decisions_queue,
    decisions_queue_arguments,
    frames_queue,
    frames_queue_arguments,
    review_queue,
    review_queue_arguments,
)

#: Site and line ids appear unescaped in permission patterns: they must not contain regex syntax.
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: A worker's own promotion-events queue (``topology.declare_model_events_queue``).
MODEL_EVENTS_QUEUES = r"sortline\.model-events\.[0-9a-f]+"
NOTHING = "^$"
#: The dead-letter queue keeps at most this many messages, dropping the oldest (a policy, not an
#: argument, so that it can be changed without redeclaring the queue).
DEAD_LETTER_MAX_LENGTH = 100_000


def _name(name: str) -> str:
    """A resource name as a pattern that matches it only (``-`` needs no escape in RabbitMQ's regexes)."""
    return re.escape(name).replace(r"\-", "-")


def _only(*patterns: str) -> str:
    """Anchored: a name matching one of ``patterns`` as a whole, nothing longer."""
    return f"^{patterns[0]}$" if len(patterns) == 1 else "^(" + "|".join(patterns) + ")$"


@dataclass(frozen=True)
class Role:
    """One broker user: its name, tags, vhost permissions and topic permissions per exchange."""

    user: str
    tags: tuple[str, ...]
    configure: str
    write: str
    read: str
    topics: tuple[tuple[str, str, str], ...] = ()  # (exchange, write pattern, read pattern)


def camera_role(site: str, line: str) -> Role:
    return Role(
        f"{site}-{line}-camera", (), NOTHING, _only(_name(FRAMES_EXCHANGE)), NOTHING,
        ((FRAMES_EXCHANGE, rf"^frames\.{line}\.[^.]+$", NOTHING),),
    )  # fmt: skip


def worker_role(site: str, line: str) -> Role:
    # The model-events queue is the worker's own (exclusive): declaring and binding it needs
    # configure and write on it, the binding read on sortline.models.
    events = MODEL_EVENTS_QUEUES
    return Role(
        f"{site}-{line}-worker",
        (),
        _only(events),
        _only(_name(DECISIONS_EXCHANGE), _name(DEAD_LETTER_EXCHANGE), _name(REVIEW_EXCHANGE), events),
        _only(_name(frames_queue(line)), _name(MODEL_EVENTS_EXCHANGE), events),
        (
            (DECISIONS_EXCHANGE, rf"^decisions\.{line}\.[^.]+$", NOTHING),
            # Dead letters keep their frame's routing key, which the line's binding matched.
            (DEAD_LETTER_EXCHANGE, rf"^frames\.{line}\.[^.]+$", NOTHING),
            (REVIEW_EXCHANGE, rf"^review\.{line}\.[^.]+$", NOTHING),
        ),
    )


def ejector_role(site: str, line: str) -> Role:
    return Role(f"{site}-{line}-ejector", (), NOTHING, NOTHING, _only(_name(decisions_queue(line))))


def trainer_role(site: str) -> Role:
    return Role(f"{site}-trainer", (), NOTHING, _only(_name(MODEL_EVENTS_EXCHANGE)), NOTHING)


def reviewer_role(site: str) -> Role:
    """``trainer review``: takes the lines' review items, nothing else."""
    return Role(f"{site}-reviewer", (), NOTHING, NOTHING, r"^sortline\.review\.[A-Za-z0-9_-]+$")


def monitor_role(site: str) -> Role:
    return Role(f"{site}-monitor", ("monitoring",), NOTHING, NOTHING, NOTHING)


def admin_role(site: str) -> Role:
    return Role(f"{site}-admin", ("administrator",), ".*", ".*", ".*")


LINE_ROLES: dict[str, Callable[[str, str], Role]] = {
    "camera": camera_role,
    "worker": worker_role,
    "ejector": ejector_role,
}
SITE_ROLES: dict[str, Callable[[str], Role]] = {
    "trainer": trainer_role,
    "reviewer": reviewer_role,
    "monitor": monitor_role,
    "admin": admin_role,
}


def site_roles(site: str, lines: Sequence[str]) -> list[Role]:
    """Every user of a site: the site-wide roles, then each line's."""
    roles = [make(site) for make in SITE_ROLES.values()]
    roles += [make(site, line) for line in lines for make in LINE_ROLES.values()]
    return roles


def password_secret(user: str) -> str:
    """Name of the secret file holding ``user``'s password: ``rabbitmq_<user>_password``."""
    return f"rabbitmq_{user.replace('-', '_')}_password"


def _topology(site: str, lines: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    exchanges = [
        {"name": name, "vhost": site, "type": kind, "durable": True, "auto_delete": False,
         "internal": False, "arguments": {}}
        for name, kind in ((FRAMES_EXCHANGE, "topic"), (DECISIONS_EXCHANGE, "topic"),
                           (DEAD_LETTER_EXCHANGE, "topic"), (MODEL_EVENTS_EXCHANGE, "fanout"),
                           (REVIEW_EXCHANGE, "topic"))
    ]  # fmt: skip
    queues = [_queue(site, DEAD_LETTER_QUEUE, {"x-queue-type": "quorum"})]
    bindings = [_binding(site, DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE, "#")]
    for line in lines:
        queues.append(_queue(site, frames_queue(line), frames_queue_arguments()))
        bindings.append(_binding(site, FRAMES_EXCHANGE, frames_queue(line), f"frames.{line}.*"))
        queues.append(_queue(site, decisions_queue(line), decisions_queue_arguments()))
        bindings.append(_binding(site, DECISIONS_EXCHANGE, decisions_queue(line), f"decisions.{line}.#"))
        queues.append(_queue(site, review_queue(line), review_queue_arguments()))
        bindings.append(_binding(site, REVIEW_EXCHANGE, review_queue(line), f"review.{line}.#"))
    return {"exchanges": exchanges, "queues": queues, "bindings": bindings}


def _queue(site: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "vhost": site, "durable": True, "auto_delete": False, "arguments": arguments}


def _binding(site: str, exchange: str, queue: str, key: str) -> dict[str, Any]:
    return {"source": exchange, "vhost": site, "destination": queue, "destination_type": "queue",
            "routing_key": key, "arguments": {}}  # fmt: skip


def _policies(site: str) -> list[dict[str, Any]]:
    bound = {"overflow": "drop-head"}
    return [
        {"vhost": site, "name": "sortline-dead-letters-bound", "pattern": r"^sortline\.dead-letters$",
         "apply-to": "queues", "priority": 10, "definition": {"max-length": DEAD_LETTER_MAX_LENGTH, **bound}},
    ]  # fmt: skip


def site_definitions(site: str, lines: Sequence[str]) -> dict[str, Any]:
    """The definitions RabbitMQ imports for one site (passwords as ``@@secret:...@@`` tokens)."""
    for name in (site, *lines):
        if not _ID.match(name):
            raise ValueError(f"{name!r}: site and line ids are 1-64 characters of [A-Za-z0-9_-]")
    roles = site_roles(site, lines)
    return {
        "rabbitmq_version": "3.10",
        "vhosts": [{"name": site, "description": f"Sortline, plant site {site}: all its lines"}],
        "users": [
            {"name": r.user, "password": f"@@secret:{password_secret(r.user)}@@", "tags": list(r.tags)}
            for r in roles
        ],
        "permissions": [
            {"user": r.user, "vhost": site, "configure": r.configure, "write": r.write, "read": r.read}
            for r in roles
        ],
        "topic_permissions": [
            {"user": r.user, "vhost": site, "exchange": exchange, "write": write, "read": read}
            for r in roles
            for exchange, write, read in r.topics
        ],
        **_topology(site, lines),
        "policies": _policies(site),
    }


#: Where a template has the site's and the line's names (deploy/site/site.env: SITE_ID, LINE_ID).
SITE_TOKEN, LINE_TOKEN = "@@site@@", "@@line@@"
#: Stand-ins while the template is built: valid ids, found nowhere else in the definitions.
_SITE_STAND_IN, _LINE_STAND_IN = "sortlinesitestandin", "sortlinelinestandin"


def site_template() -> dict[str, Any]:
    """The definitions of one site with one line, names left as tokens, each password by role.

    Filling ``@@site@@`` and ``@@line@@`` gives :func:`site_definitions` of that site and line, with
    the passwords in secret files named after the role (``rabbitmq_worker_password``), so that one
    set of deploy files serves any site.
    """
    definitions = site_definitions(_SITE_STAND_IN, [_LINE_STAND_IN])
    for user, role in zip(definitions["users"], [*SITE_ROLES, *LINE_ROLES], strict=True):
        user["password"] = f"@@secret:{password_secret(role)}@@"
    text = json.dumps(definitions).replace(_SITE_STAND_IN, SITE_TOKEN).replace(_LINE_STAND_IN, LINE_TOKEN)
    return json.loads(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sortline.broker_definitions",
        description="Print a site's RabbitMQ definitions (vhost, users per role, rights, topology).",
    )
    parser.add_argument("--site", help="Site id: the vhost and the users' prefix.")
    parser.add_argument("--lines", nargs="+", help="The site's sorting lines.")
    parser.add_argument(
        "--template", action="store_true", help="One site with one line, names and passwords as tokens."
    )
    args = parser.parse_args(argv)
    if not args.template and not (args.site and args.lines):
        parser.error("give --site and --lines, or --template")
    try:
        definitions = site_template() if args.template else site_definitions(args.site, args.lines)
    except ValueError as error:
        parser.error(str(error))
    json.dump(definitions, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
