"""Fine-tuning loop: resumable checkpoints, data-parallel training under torchrun (gloo, 2 CPU processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sortline_dev.processes import free_port
from tests.finetune_support import SIZE, SPEC, fingerprint, tiny_data, tiny_trainer
from trainer.data.augment import make_batch
from trainer.fit import checkpoint
from trainer.fit.distributed import DistInfo, shard
from trainer.fit.finetune import lr_lambda

ROOT = Path(__file__).resolve().parent.parent


def test_resume_continues_exactly_where_a_run_stopped(tmp_path: Path) -> None:
    straight = tiny_trainer(tmp_path / "straight", epochs=2)
    straight.fit()

    first = tiny_trainer(tmp_path / "split", epochs=2)
    first.fit(until=1)  # a run stopped after epoch 1 ...
    resumed = tiny_trainer(tmp_path / "split", epochs=2)
    state = checkpoint.load(tmp_path / "split" / checkpoint.LAST)
    assert state is not None and state["run"]["epoch"] == 1
    resumed.restore(state)  # ... and continued
    resumed.fit()

    last_straight = checkpoint.load(tmp_path / "straight" / checkpoint.LAST)
    last_resumed = checkpoint.load(tmp_path / "split" / checkpoint.LAST)
    assert last_straight is not None and last_resumed is not None
    for key, tensor in last_straight["net"].items():
        assert torch.equal(tensor, last_resumed["net"][key]), key
    assert [h["epoch"] for h in last_resumed["run"]["history"]] == [1, 2]
    assert fingerprint(straight.net) == pytest.approx(fingerprint(resumed.net))


def test_with_ema_the_average_is_selected_and_resumes_exactly(tmp_path: Path) -> None:
    straight = tiny_trainer(tmp_path / "straight", epochs=2, ema_decay=0.9)
    straight.fit()
    first = tiny_trainer(tmp_path / "split", epochs=2, ema_decay=0.9)
    first.fit(until=1)
    resumed = tiny_trainer(tmp_path / "split", epochs=2, ema_decay=0.9)
    resumed.restore(checkpoint.load(tmp_path / "split" / checkpoint.LAST))
    resumed.fit()

    for run in ("straight", "split"):
        last, best = (checkpoint.load(tmp_path / run / name) for name in (checkpoint.LAST, checkpoint.BEST))
        averaged = {key.removeprefix("module."): t for key, t in last["ema"].items()}
        # Each kept epoch's weights are the average's, not the last step's.
        assert any(not torch.equal(t, averaged[key]) for key, t in last["net"].items())
        assert last["run"]["best_epoch"] == 2  # seeded: the second epoch scores better
        assert all(torch.equal(t, averaged[key]) for key, t in best["net"].items())
    straight_ema = checkpoint.load(tmp_path / "straight" / checkpoint.LAST)["ema"]
    resumed_ema = checkpoint.load(tmp_path / "split" / checkpoint.LAST)["ema"]
    for key, tensor in straight_ema.items():
        assert torch.equal(tensor, resumed_ema[key]), key
    # fit() ends on the selected (averaged) weights of the best epoch.
    assert fingerprint(straight.net) == pytest.approx(fingerprint(resumed.net))


def test_checkpoints_load_without_pickle(tmp_path: Path) -> None:
    trainer = tiny_trainer(tmp_path, epochs=1)
    trainer.fit()
    state = torch.load(tmp_path / checkpoint.LAST, weights_only=True)  # raises on arbitrary objects
    assert set(state) >= {"net", "optimizer", "scheduler", "run"}


def test_shards_cover_everything_with_equal_step_counts() -> None:
    items = list(range(11))
    parts = [shard(items, DistInfo(rank, 3, rank)) for rank in range(3)]
    assert {len(p) for p in parts} == {4}
    assert set().union(*parts) == set(items)


def test_warm_up_then_cosine() -> None:
    factor = lr_lambda(10, 110)
    assert factor(0) == pytest.approx(0.1)
    assert factor(9) == pytest.approx(1.0)
    assert factor(60) == pytest.approx(0.5)
    assert factor(110) == pytest.approx(0.0)


def test_augmented_batches_have_the_training_size_and_stay_finite() -> None:
    data = tiny_data(1)
    batch = make_batch(data.images, [0, 1, 2], SPEC, 24, augment=True)
    assert batch.shape == (3, 3, 24, 24)
    assert torch.isfinite(batch).all()
    plain = make_batch(data.images, [0], SPEC, SIZE, augment=False)
    expected = (data.images[0].astype(np.float32) / 255 - np.array(SPEC.mean)) / np.array(SPEC.std)
    assert np.allclose(plain[0].permute(1, 2, 0).numpy(), expected, atol=1e-5)


def test_torchrun_two_cpu_processes_train_identical_replicas(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--nnodes", "1",
        "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
        str(ROOT / "tests" / "ddp_worker.py"), str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=55, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["world"] == 2 for r in ranks)
    assert ranks[0]["fingerprint"] == pytest.approx(ranks[1]["fingerprint"], rel=1e-6)
    single = tiny_trainer(tmp_path / "single", epochs=2)
    # each rank took half the steps a single process takes
    assert ranks[0]["steps"] == 2 * -(-len(shard(range(len(single.train.labels)), DistInfo(0, 2, 0))) // 8)


def test_refit_replaces_the_heads_and_keeps_the_backbone(tmp_path: Path) -> None:
    from trainer.fit.config import HeadConfig
    from trainer.fit.refit_heads import refit_heads

    trainer = tiny_trainer(tmp_path, epochs=1)
    trainer.fit()
    backbone_before = [p.clone() for p in trainer.net.backbone.parameters()]
    net = refit_heads(trainer.net, trainer.train, SPEC, HeadConfig(epochs=2, hidden=16))
    assert all(torch.equal(a, b) for a, b in zip(backbone_before, net.backbone.parameters(), strict=True))
    assert net.material_head[1].out_features == 16  # the MLP's hidden layer
    p, probs = net(make_batch(trainer.train.images, [0, 1], SPEC, SIZE, augment=False))
    assert p.shape == (2,) and probs.shape == (2, 6)
