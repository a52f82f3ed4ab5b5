"""Small helpers: atomic writes clean up after killed saves and give files the user's usual permissions."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from lamina.core.utils import atomic_write

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, timeout=60)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_save_killed_mid_write_leaves_a_temporary_that_the_next_save_removes(tmp_path):
    target = tmp_path / "model.pth"
    killed = run_python(f"""
        import os, signal
        from lamina.core.utils import atomic_write
        with atomic_write({str(target)!r}) as tmp:
            tmp.write_bytes(b"half a model")
            os.kill(os.getpid(), signal.SIGKILL)
        """)
    assert killed.returncode == -9
    assert len(leftovers(tmp_path)) == 1 and not target.exists()
    with atomic_write(target) as tmp:
        tmp.write_bytes(b"whole model")
    assert target.read_bytes() == b"whole model" and leftovers(tmp_path) == []


def test_an_unfinished_write_is_removed_when_the_interpreter_exits(tmp_path):
    target = tmp_path / "model.pth"
    done = run_python(f"""
        import threading
        from lamina.core.utils import atomic_write
        started, never = threading.Event(), threading.Event()
        def save():
            with atomic_write({str(target)!r}) as tmp:
                tmp.write_bytes(b"half")
                started.set()
                never.wait()
        threading.Thread(target=save, daemon=True).start()
        started.wait()
        """)
    assert done.returncode == 0, done.stderr.decode()
    assert leftovers(tmp_path) == [] and not target.exists()


def test_only_stale_temporaries_of_the_same_target_are_removed(tmp_path):
    from lamina.core.utils import remove_stale_temporaries

    target = tmp_path / "model.pth"
    old_version = tmp_path / ".model.pth.k2j4x9q1.tmp"  # mkstemp's name, from a killed save of an older lamina
    other_target = tmp_path / ".other.pth.k2j4x9q1.tmp"
    with atomic_write(target) as live:  # this process's write in progress keeps its temporary
        for p in (old_version, other_target):
            p.write_bytes(b"half")
        assert remove_stale_temporaries(target) == [old_version]
        assert live.exists() and other_target.exists()
        live.write_bytes(b"ok")
    assert leftovers(tmp_path) == [other_target.name]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)], ids=["022", "027", "002"])
def test_a_saved_file_gets_the_permissions_a_plain_open_gives_under_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        with atomic_write(tmp_path / "saved.bin") as tmp:
            tmp.write_bytes(b"data")
        with open(tmp_path / "plain.bin", "w") as f:
            f.write("data")
    finally:
        os.umask(old)
    assert (tmp_path / "saved.bin").stat().st_mode & 0o777 == mode
    assert (tmp_path / "plain.bin").stat().st_mode & 0o777 == mode


def _seeded_training(seed: int) -> list[torch.Tensor]:
    """A few shuffled batches of real MNIST digits through a model with dropout, after set_seed(seed)."""
    from lamina.core.utils import set_seed
    from lamina.data import DataLoader, DataLoaders, mnist_sample_arrays
    from lamina.learner import Learner

    set_seed(seed)
    d = mnist_sample_arrays()
    x = torch.from_numpy(d["x_train"][:256]).float().div(255).flatten(1)
    y = torch.from_numpy(d["y_train"][:256]).long()
    dls = DataLoaders(DataLoader((x[:192], y[:192]), bs=32, shuffle=True), DataLoader((x[192:], y[192:]), bs=64))
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 32), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(32, 10)
    )
    learn = Learner(dls, model, loss_func=torch.nn.CrossEntropyLoss(), show_progress=False, logger=None)
    learn.fit(1, 1e-2)
    return [p.detach().clone() for p in model.parameters()]


def test_the_same_seed_trains_the_same_weights_and_another_seed_does_not():
    first, again, other = _seeded_training(7), _seeded_training(7), _seeded_training(8)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_set_seed_deterministic_switches_torch_to_deterministic_algorithms_and_a_bad_seed_is_refused():
    from lamina.core.utils import set_seed

    before = torch.are_deterministic_algorithms_enabled()
    try:
        set_seed(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    finally:
        torch.use_deterministic_algorithms(before)
        torch.backends.cudnn.deterministic = False
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            set_seed(bad)
