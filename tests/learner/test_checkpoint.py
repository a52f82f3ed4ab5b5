"""Checkpoints and exact resume: a fit killed at any batch and resumed ends as if it had never stopped."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from lamina.callbacks import EarlyStoppingCallback, GradientAccumulation
from lamina.core import set_seed
from lamina.learner import Callback, Learner
from lamina.learner.checkpoint import (
    Checkpoint,
    CheckpointError,
    find_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from tests.conftest import mnist_dls, small_cnn

ROOT = Path(__file__).resolve().parents[2]


# ----- in a process of its own, killed with SIGKILL ---------------------------------------------------------------
def run_script(out: Path, *args: str) -> int:
    """Run tests/learner/checkpoint_run.py; the output goes to a file (a killed run's workers may outlive it)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "log.txt", "a") as log:
        cmd = [sys.executable, "-m", "tests.learner.checkpoint_run", str(out), *args]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=300).returncode


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, Path]:
    """The uninterrupted runs, trained in one fresh process: one-cycle with the loader's order from torch's RNG
    (seed=None) and from a loader seed, and fine_tune."""
    root = tmp_path_factory.mktemp("uninterrupted")
    runs = {
        "one_cycle": (None, "fit_one_cycle"),
        "one_cycle_seed7": (7, "fit_one_cycle"),
        "fine_tune": (None, "fine_tune"),
    }
    calls = "; ".join(f"train(Path({str(root / k)!r}), loader_seed={s}, method={m!r})" for k, (s, m) in runs.items())
    code = f"from pathlib import Path; from tests.learner.checkpoint_run import train; {calls}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return {k: root / k for k in runs}


def assert_same_run(expected: Path, got: Path) -> None:
    """Bitwise-equal final weights and an equal Recorder history (losses, lrs, momentums, epoch rows but time)."""
    want, have = load_file(expected / "final.safetensors"), load_file(got / "final.safetensors")
    assert want.keys() == have.keys()
    differ = [k for k in want if not torch.equal(want[k], have[k])]
    assert not differ, f"weights differ from the uninterrupted run: {differ}"
    assert json.loads((expected / "history.json").read_text()) == json.loads((got / "history.json").read_text())


@pytest.mark.parametrize(
    "workers,loader_seed", [(0, None), (2, 7)], ids=["0 workers, torch RNG order", "2 workers, seed 7"]
)
def test_a_fit_killed_mid_epoch_resumes_in_a_new_process_to_bitwise_identical_weights_and_history(
    uninterrupted, tmp_path, workers, loader_seed
):
    args = ["--workers", str(workers), *(["--loader-seed", str(loader_seed)] if loader_seed is not None else [])]
    assert run_script(tmp_path, *args, "--kill-at", "10") == -signal.SIGKILL  # 6 batches per epoch: in epoch 1
    newest = find_checkpoint(tmp_path / "models")
    assert read_checkpoint(newest)[0]["position"] == {"epoch": 1, "batch": 2}  # the checkpoint of batch 8
    assert not (tmp_path / "final.safetensors").exists()
    assert run_script(tmp_path, *args, "--resume") == 0
    assert json.loads((tmp_path / "trained.json").read_text()) == [[1, i, 2] for i in range(2, 6)]  # only the rest
    assert_same_run(uninterrupted["one_cycle_seed7" if loader_seed else "one_cycle"], tmp_path)


def test_fine_tune_killed_in_its_unfrozen_phase_resumes_in_that_phase_to_bitwise_identical_weights(
    uninterrupted, tmp_path
):
    assert run_script(tmp_path, "--method", "fine_tune", "--kill-at", "10") == -signal.SIGKILL
    spec, _ = read_checkpoint(find_checkpoint(tmp_path / "models"))
    assert spec["callbacks"]["fit_stage"] == {"stage": "fine_tune:unfrozen"}
    assert run_script(tmp_path, "--method", "fine_tune", "--resume") == 0
    assert json.loads((tmp_path / "trained.json").read_text()) == [[1, i, 2] for i in range(2, 6)]  # no frozen fit
    assert_same_run(uninterrupted["fine_tune"], tmp_path)


def test_a_kill_while_a_checkpoint_is_written_leaves_the_previous_one_to_resume_from(uninterrupted, tmp_path):
    assert run_script(tmp_path, "--die-writing-at", "8") == -signal.SIGKILL
    models = tmp_path / "models"
    assert [p.name for p in models.glob(".checkpoint_000003.ckpt.*.tmp")]  # the half-written file, never renamed
    newest = find_checkpoint(models)
    assert newest.name == "checkpoint_000002.ckpt"
    assert read_checkpoint(newest)[0]["position"] == {"epoch": 1, "batch": 0}  # the end of epoch 0 (batch 6)
    assert run_script(tmp_path, "--resume") == 0
    assert json.loads((tmp_path / "trained.json").read_text()) == [[1, i, 2] for i in range(6)]
    assert_same_run(uninterrupted["one_cycle"], tmp_path)
    assert not list(models.glob("*.tmp"))  # the next write of that name cleared the leftover


# ----- in this process: a crash is an exception ------------------------------------------------------------------
class PowerCut(Exception):
    pass


class CutAt(Callback):
    def __init__(self, at: int) -> None:
        self.at = at

    def after_batch(self) -> None:
        if self.learn.training and self.learn.train_iter == self.at:
            raise PowerCut()


def make_learner(mnist, path: Path, loader_seed: int | None = 0) -> Learner:
    set_seed(0)
    learn = Learner(mnist_dls(mnist, n_train=320, n_valid=64, bs=64, seed=loader_seed), small_cnn(), path=path,
                    logger=None, show_progress=False)  # fmt: skip
    return learn


FITS = {
    "fit": lambda learn, cbs, resume: learn.fit(2, 1e-2, cbs=cbs, resume=resume),
    "fit_flat_cos": lambda learn, cbs, resume: learn.fit_flat_cos(2, 1e-2, cbs=cbs, resume=resume),
    "fit_sgdr": lambda learn, cbs, resume: learn.fit_sgdr(2, 1, 1e-2, cbs=cbs, resume=resume),
}


class Trained(Callback):
    """Records the (epoch, batch) of every training batch."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, int]] = []

    def after_batch(self) -> None:
        if self.learn.training:
            self.batches.append((self.learn.epoch, self.learn.iter))


def crash_and_resume(mnist, folder: Path, fit, cut_at: int, extra=(), loader_seed: int | None = 0, **every):
    """(weights after a fit cut at batch ``cut_at`` then resumed with "auto", weights of the uninterrupted fit,
    the batches the resumed fit trained, those the uninterrupted one trained)."""
    learn = make_learner(mnist, folder / "cut", loader_seed)
    with pytest.raises(PowerCut):
        fit(learn, [Checkpoint(**every), CutAt(cut_at), *[type(cb)(**kw) for cb, kw in extra]], None)
    learn, resumed = make_learner(mnist, folder / "cut", loader_seed), Trained()
    fit(learn, [Checkpoint(**every), resumed, *[type(cb)(**kw) for cb, kw in extra]], "auto")
    weights = learn.model.state_dict()
    learn, whole = make_learner(mnist, folder / "whole", loader_seed), Trained()
    fit(learn, [Checkpoint(**every), whole, *[type(cb)(**kw) for cb, kw in extra]], None)
    return weights, learn.model.state_dict(), resumed.batches, whole.batches


@pytest.mark.parametrize("method", list(FITS))
def test_every_fit_method_resumes_a_crashed_fit_exactly(mnist, tmp_path, method):
    resumed, whole, trained, all_batches = crash_and_resume(mnist, tmp_path, FITS[method], 8, every_n_batches=3)
    assert trained == all_batches[6:] and trained[0] == (1, 1)  # from the checkpoint of batch 6, mid-epoch 1
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)


def test_fine_tune_cut_in_its_frozen_phase_resumes_there_then_runs_the_unfrozen_phase(mnist, tmp_path):
    def fine_tune(learn, cbs, resume):
        learn.fine_tune(1, 1e-2, freeze_epochs=1, cbs=cbs, resume=resume)

    resumed, whole, trained, all_batches = crash_and_resume(mnist, tmp_path, fine_tune, 3, every_n_batches=2)
    assert trained == all_batches[2:] and len(all_batches) == 10  # the frozen fit from its batch 2, then all
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)


def test_resume_at_an_epoch_end_checkpoint_with_the_loader_order_from_torchs_rng(mnist, tmp_path):
    resumed, whole, trained, all_batches = crash_and_resume(mnist, tmp_path, FITS["fit"], 7, loader_seed=None)
    assert trained == all_batches[5:] and trained[0] == (1, 0)
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)


def test_a_checkpoint_taken_mid_accumulation_keeps_the_accumulated_gradients(mnist, tmp_path):
    acc = GradientAccumulation(n_acc=192)  # a step every 3 batches; checkpoints after batches 2, 4...
    resumed, whole, trained, _ = crash_and_resume(mnist, tmp_path, FITS["fit"], 5, [(acc, {"n_acc": 192})],
                                                  every_n_batches=2)  # fmt: skip
    assert trained[0] == (0, 4)  # the checkpoint of batch 4 held one batch of gradients
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)


def test_the_logs_of_a_resumed_fit_have_each_epoch_once_as_the_uninterrupted_fit_wrote_them(mnist, tmp_path):
    pytest.importorskip("tensorboard")
    from lamina.callbacks import CSVLogger, TensorBoardCallback

    logs = [(CSVLogger(), {}), (TensorBoardCallback(log_dir="tb"), {"log_dir": "tb"})]
    crash_and_resume(mnist, tmp_path, FITS["fit"], 8, logs, every_n_batches=2)  # after the epoch 0 row
    cut, whole = (tmp_path / "cut" / "history.csv").read_text(), (tmp_path / "whole" / "history.csv").read_text()
    rows = [line.rsplit(",", 1)[0] for line in cut.splitlines()]  # the last column is the time taken
    assert rows == [line.rsplit(",", 1)[0] for line in whole.splitlines()] and len(rows) == 3


def test_resume_auto_without_a_checkpoint_starts_from_scratch(mnist, tmp_path):
    learn = make_learner(mnist, tmp_path / "a")
    learn.fit(1, 1e-2, resume="auto")
    fresh = make_learner(mnist, tmp_path / "b")
    fresh.fit(1, 1e-2)
    assert all(torch.equal(v, fresh.model.state_dict()[k]) for k, v in learn.model.state_dict().items())


def written(mnist, folder: Path, **every) -> Path:
    learn = make_learner(mnist, folder)
    learn.fit_one_cycle(1, 1e-2, cbs=[Checkpoint(**every), EarlyStoppingCallback(patience=3)])
    return find_checkpoint(folder / "models")


def test_a_checkpoint_is_safetensors_with_a_json_description_and_no_pickle(mnist, tmp_path):
    file = written(mnist, tmp_path)
    with safe_open(str(file), framework="pt") as f:
        spec = json.loads(f.metadata()["lamina"])
        keys = set(f.keys())
    assert {"model/0.weight", "model/1.running_mean", "rng/torch"} <= keys
    assert any(k.startswith("opt/groups/0/state/") for k in keys)
    assert spec["position"] == {"epoch": 1, "batch": 0} and spec["learner"]["train_iter"] == 5
    assert set(spec["rng"]) >= {"python", "numpy", "torch"}
    assert spec["loaders"][0] == {"epoch": 1, "batch": 0, "order_seed": None}
    assert set(spec["callbacks"]) == {"recorder", "early_stopping", "param_scheduler"}
    assert len(spec["callbacks"]["recorder"]["losses"]) == 5
    assert spec["callbacks"]["early_stopping"]["best_epoch"] == 0


def test_a_truncated_checkpoint_is_refused_naming_the_file_and_the_fix(mnist, tmp_path):
    file = written(mnist, tmp_path)
    file.write_bytes(file.read_bytes()[:-1000])
    learn = make_learner(mnist, tmp_path)
    with pytest.raises(CheckpointError, match=rf"{file.name} is not a readable lamina checkpoint.*Delete it"):
        learn.fit_one_cycle(1, 1e-2, cbs=[EarlyStoppingCallback(patience=3)], resume="auto")


@pytest.mark.parametrize(
    "change,message",
    [
        ({"n_epoch": 3}, "fit of 1 epochs of 5 training batches.*this fit has 3"),
        ({"model": torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))}, "does not fit this model"),
        (
            {"cbs": []},
            r"callbacks \['early_stopping', 'param_scheduler', 'recorder'\].*\['param_scheduler', 'recorder'\]",
        ),
        ({"lr": 0.5}, "'lr' schedule of the checkpoint's fit"),
    ],
    ids=["length", "model", "callbacks", "schedule"],
)
def test_a_checkpoint_of_another_fit_is_refused_naming_the_file_and_what_differs(mnist, tmp_path, change, message):
    file = written(mnist, tmp_path)
    learn = make_learner(mnist, tmp_path)
    if "model" in change:
        learn = Learner(learn.dls, change["model"], path=tmp_path, logger=None, show_progress=False)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    cbs = change.get("cbs", [EarlyStoppingCallback(patience=3)])
    with pytest.raises(CheckpointError, match=message) as caught:
        learn.fit_one_cycle(change.get("n_epoch", 1), change.get("lr", 1e-2), cbs=cbs, resume=file)
    assert str(file) in str(caught.value) and "resume" in str(caught.value)
    assert all(torch.equal(v, learn.model.state_dict()[k]) for k, v in before.items())  # nothing was loaded


def test_a_rank_side_file_is_not_taken_for_a_checkpoint(mnist, tmp_path):
    learn = make_learner(mnist, tmp_path)
    learn.fit(1, 1e-2)
    side = save_checkpoint(learn, tmp_path / "checkpoint_000001.ckpt", epoch_done=True, rank=1, world_size=2)
    with pytest.raises(CheckpointError, match=r"rank1\.ckpt is not a readable .* not the main file"):
        make_learner(mnist, tmp_path).fit(1, 1e-2, resume=side)


def test_a_fit_checkpoint_cannot_resume_fit_one_cycle_nor_the_reverse(mnist, tmp_path):
    learn = make_learner(mnist, tmp_path)
    learn.fit(1, 1e-2, cbs=[Checkpoint()])
    with pytest.raises(CheckpointError, match="param_scheduler"):
        make_learner(mnist, tmp_path).fit_one_cycle(1, 1e-2, resume="auto")


def test_checkpoint_keeps_the_newest_files_only(mnist, tmp_path):
    learn = make_learner(mnist, tmp_path)
    learn.fit(2, 1e-2, cbs=[Checkpoint(every_n_batches=2, keep=3)])  # 5 batch and 2 epoch checkpoints
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [f"checkpoint_00000{i}.ckpt" for i in (5, 6, 7)]
    assert read_checkpoint(tmp_path / "models" / "checkpoint_000007.ckpt")[0]["position"] == {"epoch": 2, "batch": 0}


def test_another_rank_writes_its_generators_and_loader_positions_beside_the_main_file(mnist, tmp_path):
    learn = make_learner(mnist, tmp_path)
    learn.fit(1, 1e-2)
    side = save_checkpoint(learn, tmp_path / "checkpoint_000001.ckpt", epoch_done=True, rank=1, world_size=2)
    assert side.name == "checkpoint_000001.rank1.ckpt" and find_checkpoint(tmp_path) is None  # not a checkpoint alone
    spec, tensors = read_checkpoint(side)
    assert (spec["rank"], spec["world_size"]) == (1, 2) and set(tensors) == {"rng/torch"}
    assert "model" not in spec and spec["loaders"][0]["epoch"] == 1


@pytest.mark.parametrize(
    "kwargs,message",
    [({"every_n_batches": 0}, "every_n_batches"), ({"keep": 0}, "keep"), ({"fname": "ckpt_3"}, "fname")],
)
def test_checkpoint_refuses_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Checkpoint(**kwargs)
