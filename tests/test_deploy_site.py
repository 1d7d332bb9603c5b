"""The site, its line and its camera are named in one place: deploy/site/site.env. Nothing else in
deploy/ names them (comments aside: they give examples), so a plant sets its names once."""

from __future__ import annotations

import re

from tests.deploy_support import DEPLOY, SITE_ENV, site_names

#: Promtool's unit tests of the alert rules feed made-up series; their labels are test data.
TEST_DATA = {DEPLOY / "prometheus" / "rules" / "sortline.rules.test.yml"}


def test_the_site_names_are_valid_everywhere_they_go() -> None:
    names = site_names()
    assert set(names) == {"SITE_ID", "LINE_ID", "CAMERA_ID"}
    for name in names.values():  # RabbitMQ permission patterns, routing keys, Kubernetes names
        assert re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?", name), name


def test_no_other_file_in_deploy_names_the_site() -> None:
    names = "|".join(re.escape(name) for name in site_names().values())
    spelled = re.compile(rf"(?<![\w-])({names}|{names.replace('-', '_')})(?![\w-])")
    found = []
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file() and not p.is_symlink()):
        if path == SITE_ENV or path in TEST_DATA or "secrets" in path.relative_to(DEPLOY).parts:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if not line.lstrip().startswith("#") and spelled.search(line.split(" # ")[0]):
                found.append(f"{path.relative_to(DEPLOY)}:{number}: {line.strip()}")
    assert not found, "set these from deploy/site/site.env instead:\n" + "\n".join(found)
