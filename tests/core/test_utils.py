"""Small helpers: atomic writes clean up after killed saves and give files the user's usual permissions."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

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
