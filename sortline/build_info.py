"""What build a process is: the package version and the source revision it was built from.

The revision comes from ``SORTLINE_BUILD_REVISION``, which the Dockerfile bakes into each image
(``--build-arg REVISION=$(git rev-parse HEAD)``); a checkout without it says ``unknown``.
"""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


def package_version() -> str:
    try:
        return version("sortline")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def revision() -> str:
    return os.environ.get("SORTLINE_BUILD_REVISION", "").strip() or "unknown"


def version_text() -> str:
    """``0.1.0 (revision abc123, Python 3.11.9)``: what ``--version`` prints."""
    return f"{package_version()} (revision {revision()}, Python {platform.python_version()})"


def register_build_info(registry: CollectorRegistry) -> None:
    """``sortline_build_info{version, revision, python} 1`` on ``registry``, so dashboards and
    alerts can tell which build each process runs."""
    from prometheus_client import Info  # the contract package itself does not need it

    Info("sortline_build", "The Sortline build this process runs.", registry=registry).info(
        {"version": package_version(), "revision": revision(), "python": platform.python_version()}
    )
