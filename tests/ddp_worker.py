"""Run by ``torchrun --nproc-per-node 2`` in tests: tiny data-parallel fine-tuning on gloo.

Each rank writes its world size and a fingerprint of its final weights to OUT/rank<r>.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.finetune_support import fingerprint, tiny_trainer
from trainer.fit.distributed import init_from_env, shutdown


def main(out: Path) -> None:
    torch.set_num_threads(1)
    info = init_from_env(torch.device("cpu"))
    trainer = tiny_trainer(out / "run", epochs=2, info=info)
    for epoch in range(2):  # the training epochs of fit(), without rank 0's checkpointing
        trainer.train_epoch(epoch)
    result = {"world": info.world_size, "fingerprint": fingerprint(trainer.net), "steps": trainer.state.step}
    (out / f"rank{info.rank}.json").write_text(json.dumps(result))
    shutdown(info)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
