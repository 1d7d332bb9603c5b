"""``python -m sortline_dev.belt``: render one belt clip and its truth; exit 2 on bad flags."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from sortline.settings import configure_logging, parse_cli
from sortline_dev.belt.clip import generate_clip
from sortline_dev.belt.settings import BeltClipSettings

log = logging.getLogger("sortline_dev.belt")


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_cli(BeltClipSettings, argv, prog="python -m sortline_dev.belt")
    configure_logging(settings.log_level)
    try:
        truth = generate_clip(settings)
    except (OSError, ValueError) as error:
        print(f"python -m sortline_dev.belt: {error}", file=sys.stderr)
        return 2
    touching = sum(t.touching for t in truth)
    print(f"{settings.out}: {settings.frame_count} frames, {len(truth)} items crossed the trigger "
          f"({touching} touching); truth in {settings.truth_path()}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
