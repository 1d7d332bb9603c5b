"""``sortline COMMAND``: what an operator, integrator or engineer runs beside the services.

Exit codes: 0 done (or stopped by Ctrl-C / SIGTERM), 2 bad flags or a broker that refuses us.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sortline.settings import CliSettings, configure_logging, parse_command
from sortline_tools.tail import TailSettings, run_tail

PROG = "sortline"
ABOUT = "sortline: tools beside a running line (the services themselves are classifier-worker, "
ABOUT += "camera-agent, ejector-bridge and trainer)."
COMMANDS: dict[str, type[CliSettings]] = {"tail": TailSettings}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        _name, settings = parse_command(COMMANDS, argv, PROG, ABOUT)
    except SystemExit as stop:  # --help (0) or bad flags (2, the message already printed)
        return int(stop.code or 0)
    configure_logging(settings.log_level, settings.log_format)
    assert isinstance(settings, TailSettings)
    return run_tail(settings, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
