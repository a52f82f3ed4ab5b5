"""Checkpoints that let a killed fit resume at its exact batch, ending with the weights of an uninterrupted run.

A checkpoint (``<name>_<sequence>.ckpt``, a safetensors file: tensors in safetensors, everything else as JSON in its
metadata, no pickle) holds what the rest of the fit depends on:

- the model's state, the optimizer's (hyper-parameters, step counts, moments) and any accumulated gradients;
- where training stands: the position (epoch, batches of it done), ``train_iter`` and ``pct_train`` (so schedules
  carry on), the fit's length (checked on resume);
- each loader's ``state_dict`` (epoch counter, batches done, the seed of the epoch's order);
- every random generator: Python's ``random``, numpy's global one, torch's CPU one and CUDA's when in use;
- the state of every callback that has one (``state_dict``/``load_state_dict``, see ``Callback``): the Recorder's
  history, trackers, early stopping, mixed precision's loss scale...

``Checkpoint`` writes them during a fit; ``fit(..., resume=path or "auto")`` (and every fit method) reads one back:
after every callback's ``before_fit`` it restores a checkpoint taken at the end of an epoch, and one taken mid-epoch
after the resumed epoch's ``before_train``, that is, at the same moment of the loop as when it was written. The
loaders then skip the batches already trained without making them.

With several processes (``torch.distributed``), rank 0 writes the file and each other rank ``r`` writes its own random
generators and loader positions beside it, in ``<name>_<sequence>.rank<r>.ckpt``, before rank 0 writes the main file.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from lamina.core.utils import atomic_write
from lamina.learner import distributed
from lamina.learner.callback import Callback
from lamina.learner.distributed import unwrap

if TYPE_CHECKING:
    from lamina.learner.learner import Learner

__all__ = [
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "CheckpointError",
    "FitStage",
    "Resume",
    "checkpoint_stage",
    "find_checkpoint",
    "read_checkpoint",
    "resume_file",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]

CHECKPOINT_FORMAT = "lamina.checkpoint"
_VERSION = 1
_TENSOR = "__tensor__"
_MAIN = re.compile(r"^(?P<name>.+)_(?P<seq>\d+)\.ckpt$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that does not fit the fit resuming from it.

    Examples:
        >>> issubclass(CheckpointError, ValueError)
        True
    """


# ----- state to JSON + tensors and back ------------------------------------------------------------------------
def _encode(obj: Any, key: str, tensors: dict[str, Tensor]) -> Any:
    """``obj`` as JSON, each tensor moved into ``tensors`` under its path and replaced by ``{"__tensor__": path}``."""
    if isinstance(obj, Tensor):
        if key in tensors:
            raise ValueError(f"two checkpoint entries are both named {key!r}; rename one (keys must not contain '/')")
        tensors[key] = obj
        return {_TENSOR: key}
    if isinstance(obj, dict):
        bad = [k for k in obj if not isinstance(k, str)]
        if bad:
            raise TypeError(f"checkpoint state {key!r} has a key {bad[0]!r}: keys must be strings (JSON objects)")
        return {k: _encode(v, f"{key}/{k}", tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v, f"{key}/{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(
        f"checkpoint state {key!r} is a {type(obj).__name__}: a state holds only tensors, numbers, strings, None, "
        "and lists or str-keyed dicts of them (see the state_dict contract of lamina.learner.Callback)"
    )


def _decode(obj: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {_TENSOR}:
            return tensors[obj[_TENSOR]]
        return {k: _decode(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    return obj


def _storable(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """Plain, contiguous CPU tensors, none sharing memory with another (as safetensors requires)."""
    out, seen = {}, set()
    for k, t in tensors.items():
        t = t.detach().as_subclass(Tensor).cpu().contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen or t.untyped_storage().nbytes() != t.numel() * t.element_size():
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[k] = t
    return out


# ----- random generators ---------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """The state of every random generator of this process: Python's ``random``, numpy's global generator, torch's
    CPU generator and, once CUDA is in use, every CUDA device's (JSON values and tensors).

    Examples:
        >>> state = rng_state(); first = torch.rand(1)
        >>> set_rng_state(state); bool(torch.rand(1) == first)
        True
    """
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (lists where it had tuples are accepted: a state read back from JSON).

    Examples:
        >>> state = rng_state(); first = random.random()
        >>> set_rng_state(state); random.random() == first
        True
    """
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----- writing and reading -------------------------------------------------------------------------------------
def _rank_file(file: Path, rank: int) -> Path:
    return file.with_name(f"{file.name[: -len('.ckpt')]}.rank{rank}.ckpt") if rank else file


def save_checkpoint(learn: Learner, file: str | Path, epoch_done: bool, rank: int = 0, world_size: int = 1) -> Path:
    """Write ``learn``'s training state to ``file`` atomically (a crash mid-write leaves no half file); returns the
    file this rank wrote.

    Args:
        learn: the learner, in a fit: at ``after_batch`` of a training batch, or at ``after_epoch``.
        file: the destination (``.ckpt``).
        epoch_done: ``True`` at the end of an epoch, ``False`` after a training batch.
        rank: this process's rank: rank 0 writes everything; another rank writes its random generators and loader
            positions to ``<file stem>.rank<rank>.ckpt``.
        world_size: the number of processes.

    Examples:
        >>> import tempfile
        >>> from lamina.data import DataLoader, DataLoaders
        >>> from lamina.learner import Learner
        >>> learn = Learner(DataLoaders(DataLoader((torch.randn(8, 2), torch.randn(8, 1)))), torch.nn.Linear(2, 1),
        ...                 path=tempfile.mkdtemp(), logger=None, show_progress=False)
        >>> learn.fit(1)
        >>> file = save_checkpoint(learn, learn.path / "models" / "checkpoint_000001.ckpt", epoch_done=True)
        >>> spec, tensors = read_checkpoint(file)
        >>> spec["position"], sorted(tensors)[:2]
        ({'epoch': 1, 'batch': 0}, ['model/bias', 'model/weight'])
    """
    file, tensors = Path(file), dict[str, Tensor]()
    position = {"epoch": learn.epoch + 1, "batch": 0} if epoch_done else {"epoch": learn.epoch, "batch": learn.iter + 1}
    spec: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT, "version": _VERSION, "rank": rank, "world_size": world_size,
        "position": position, "loaders": [dl.state_dict() for dl in learn.dls.loaders],
        "rng": _encode(rng_state(), "rng", tensors),
    }  # fmt: skip
    if rank == 0:
        model = unwrap(learn.model)
        grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        spec.update(
            learner={"n_epoch": learn.n_epoch, "train_batches": len(learn.dls.train), "n_loaders": len(learn.dls),
                     "train_iter": learn.train_iter, "pct_train": learn.pct_train},
            model=_encode(model.state_dict(), "model", tensors),
            opt=_encode(learn.opt.state_dict(), "opt", tensors) if learn.opt is not None else None,
            grads=_encode(grads, "grads", tensors),
            callbacks={name: _encode(s, f"callbacks/{name}", tensors) for name, s in _callback_states(learn).items()},
        )  # fmt: skip
    return _write(_rank_file(file, rank), spec, tensors)


def _write(file: Path, spec: dict[str, Any], tensors: dict[str, Tensor]) -> Path:
    from safetensors.torch import save

    data = save(_storable(tensors), metadata={"lamina": json.dumps(spec)})
    with atomic_write(file) as tmp:
        tmp.write_bytes(data)  # into atomic_write's file, which has the permissions a plain open gives
    return file


def _stateful(learn: Learner) -> dict[str, Callback]:
    """The callbacks of ``learn`` that have a training state, by name."""
    out: dict[str, Callback] = {}
    for cb in learn.cbs:
        if callable(getattr(cb, "state_dict", None)) and callable(getattr(cb, "load_state_dict", None)):
            if cb.name in out:
                raise ValueError(f"two callbacks named {cb.name!r} hold state: a checkpoint cannot tell them apart")
            out[cb.name] = cb
    return out


def _callback_states(learn: Learner) -> dict[str, Any]:
    return {name: cb.state_dict() for name, cb in _stateful(learn).items()}  # type: ignore[attr-defined]


def _unreadable(file: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"{file} is not a readable lamina checkpoint ({why}); it may be truncated or corrupt. Delete it to resume "
        "from the previous checkpoint (resume='auto' takes the newest left), pass resume= an older file, or train "
        "without resume"
    )


def _read(file: Path, with_tensors: bool) -> tuple[dict[str, Any], dict[str, Tensor]]:
    from safetensors import safe_open

    if not file.is_file():
        raise FileNotFoundError(f"no checkpoint at {file}: pass a file a Checkpoint callback wrote, or resume='auto'")
    try:
        with safe_open(str(file), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()} if with_tensors else {}
        spec = json.loads(meta["lamina"])
    except Exception as e:  # safetensors' own errors, a missing or malformed description
        raise _unreadable(file, f"{type(e).__name__}: {e}") from None
    if not isinstance(spec, dict) or spec.get("format") != CHECKPOINT_FORMAT:
        raise _unreadable(file, "its description is not a lamina checkpoint's")
    if spec.get("version") != _VERSION:
        raise CheckpointError(f"{file} has checkpoint version {spec.get('version')!r}; this lamina reads {_VERSION}")
    return spec, tensors


def read_checkpoint(file: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The description (JSON) and the tensors of a checkpoint; an unreadable file is a :class:`CheckpointError`
    naming it and what to do.

    Examples:
        >>> import tempfile
        >>> bad = Path(tempfile.mkdtemp()) / "checkpoint_000001.ckpt"
        >>> _ = bad.write_bytes(b"half a file")
        >>> read_checkpoint(bad)
        Traceback (most recent call last):
        ...
        lamina.learner.checkpoint.CheckpointError: .../checkpoint_000001.ckpt is not a readable lamina checkpoint ...
    """
    return _read(Path(file), with_tensors=True)


def find_checkpoint(folder: str | Path) -> Path | None:
    """The newest checkpoint (highest sequence number) in ``folder``, or ``None`` when there is none.

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> for name in ("checkpoint_000002.ckpt", "checkpoint_000010.ckpt", "checkpoint_000010.rank1.ckpt"):
        ...     _ = (folder / name).write_bytes(b"")
        >>> find_checkpoint(folder).name, find_checkpoint(folder / "none")
        ('checkpoint_000010.ckpt', None)
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = [(int(m["seq"]), p.stat().st_mtime_ns, p) for p in folder.iterdir() if (m := _MAIN.match(p.name))]
    return max(found)[2] if found else None


def _next_sequence(folder: Path) -> int:
    newest = find_checkpoint(folder)
    match = _MAIN.match(newest.name) if newest is not None else None
    return int(match["seq"]) + 1 if match else 1


def resume_file(learn: Learner, resume: str | Path | None) -> Path | None:
    """The checkpoint a fit with ``resume=`` continues from: ``None`` for ``None``; for ``"auto"`` the newest in
    ``learn.path / learn.model_dir`` (``None`` when there is none: the fit starts from scratch); else the file
    (a relative path is also looked for in that folder).

    Args:
        learn: the learner.
        resume: ``None``, ``"auto"`` or a path.

    Examples:
        >>> import tempfile
        >>> from lamina.data import DataLoader, DataLoaders
        >>> from lamina.learner import Learner
        >>> learn = Learner(DataLoaders(DataLoader((torch.randn(8, 2), torch.randn(8, 1)))), torch.nn.Linear(2, 1),
        ...                 path=tempfile.mkdtemp())
        >>> resume_file(learn, "auto") is None
        True
    """
    if resume is None:
        return None
    folder = learn.path / learn.model_dir
    if resume == "auto":
        return find_checkpoint(folder)
    for file in (Path(resume), folder / resume):
        if file.is_file():
            return file
    raise FileNotFoundError(
        f"no checkpoint at {resume} (nor in {folder}): pass a file a Checkpoint callback wrote, resume='auto' for "
        "the newest one, or resume=None to start from scratch"
    )


def checkpoint_stage(file: str | Path) -> str | None:
    """The stage (see :class:`FitStage`) a checkpoint was taken in, ``None`` when its fit had none.

    Examples:
        >>> checkpoint_stage("no/such.ckpt")
        Traceback (most recent call last):
        ...
        FileNotFoundError: no checkpoint at no/such.ckpt: ...
    """
    spec, _ = _read(Path(file), with_tensors=False)
    stage = spec.get("callbacks", {}).get("fit_stage")
    return stage.get("stage") if isinstance(stage, dict) else None


# ----- resuming ------------------------------------------------------------------------------------------------
def _model_problems(model: torch.nn.Module, saved: dict[str, Any]) -> list[str]:
    own = model.state_dict()
    problems = [f"{k} is missing from the file" for k in sorted(own.keys() - saved.keys())[:5]]
    problems += [f"{k} is in the file but not in the model" for k in sorted(saved.keys() - own.keys())[:5]]
    problems += [
        f"{k} has shape {tuple(v.shape)} in the file but {tuple(own[k].shape)} in the model"
        for k, v in saved.items()
        if k in own and isinstance(v, Tensor) and v.shape != own[k].shape
    ]
    return problems


def _check_fit(learn: Learner, spec: dict[str, Any], world_size: int, file: Path) -> None:
    """Raise a :class:`CheckpointError` naming ``file``, what differs and the fix, unless it fits this fit."""
    fix = "resume with the same fit method, arguments, data and callbacks, or pass resume=None to start from scratch"
    saved = spec["learner"]
    had = (saved["n_epoch"], saved["train_batches"], saved["n_loaders"], spec["world_size"])
    has = (learn.n_epoch, len(learn.dls.train), len(learn.dls), world_size)
    if had != has:
        raise CheckpointError(
            f"{file} was taken in a fit of {had[0]} epochs of {had[1]} training batches, with {had[2]} loaders on "
            f"{had[3]} processes; this fit has {has[0]}, {has[1]}, {has[2]} and {has[3]}: {fix}"
        )
    own, theirs = set(_stateful(learn)), set(spec["callbacks"])
    if own != theirs:
        raise CheckpointError(
            f"{file} holds the state of callbacks {sorted(theirs)} but this fit's callbacks with a state are "
            f"{sorted(own)}: {fix}"
        )
    problems = _model_problems(unwrap(learn.model), spec["model"])
    if problems:
        raise CheckpointError(f"{file} does not fit this model: {'; '.join(problems)}. Nothing was loaded: {fix}")


class Resume(Callback):
    """Continue a fit from a checkpoint at its exact batch (what ``fit(..., resume=file)`` adds).

    After every other callback's ``before_fit`` the checkpoint is read and checked against the fit (its length, the
    model, the callbacks that hold state; a mismatch is a :class:`CheckpointError` naming the file and the fix) and
    the fit is moved to the checkpoint's epoch. Its state is restored then for a checkpoint taken at the end of an
    epoch, or after the resumed epoch's ``before_train`` for one taken mid-epoch: the moment of the loop it was
    taken at. The random generators come last, so nothing draws from them between the restore and the next batch.

    Args:
        file: a checkpoint written by :class:`Checkpoint` (or :func:`save_checkpoint`).

    Examples:
        >>> Resume("models/checkpoint_000004.ckpt").order > 100
        True
    """

    order = 1000  # after every other callback's before_fit and before_train

    def __init__(self, file: str | Path) -> None:
        self.file = Path(file)
        self._loaded: tuple[dict[str, Any], dict[str, Tensor], dict[str, Any]] | None = None

    def before_fit(self) -> None:
        rank, world_size = distributed.rank(), distributed.world_size()
        spec, tensors = read_checkpoint(self.file)
        try:
            _check_fit(self.learn, spec, world_size, self.file)
        except (KeyError, TypeError) as e:
            raise _unreadable(self.file, f"its description lacks {e}: not the main file of a checkpoint") from None
        if not spec["position"]["epoch"] <= self.learn.n_epoch:
            raise CheckpointError(f"{self.file}: its position {spec['position']} is past the fit's end")
        own = spec  # this rank's generators and loader positions
        if rank:
            own, side = read_checkpoint(_rank_file(self.file, rank))
            tensors = {**tensors, **side}
        self.learn.start_epoch = spec["position"]["epoch"]
        self._loaded = (spec, tensors, own)
        if spec["position"]["batch"] == 0:
            self._restore()

    def before_train(self) -> None:
        if self._loaded is not None:
            self._restore()

    def _restore(self) -> None:
        assert self._loaded is not None
        (spec, tensors, own), self._loaded = self._loaded, None
        learn = self.learn
        if spec["opt"] is not None:
            try:
                learn._new_opt().load_state_dict(_decode(spec["opt"], tensors))  # a scratch optimizer checks it
            except Exception as e:
                raise CheckpointError(f"{self.file}: the optimizer state does not fit this optimizer ({e})") from e
        stateful = _stateful(learn)
        for name, state in spec["callbacks"].items():
            try:
                stateful[name].load_state_dict(_decode(state, tensors))  # type: ignore[attr-defined]
            except (ValueError, KeyError, TypeError) as e:
                raise CheckpointError(f"{self.file}: callback {name!r} cannot take its saved state: {e}") from e
        model = unwrap(learn.model)
        model.load_state_dict(_decode(spec["model"], tensors))
        if learn.opt is not None and spec["opt"] is not None:
            learn.opt.load_state_dict(_decode(spec["opt"], tensors))
        grads = _decode(spec["grads"], tensors)
        for name, p in model.named_parameters():
            p.grad = grads[name].to(p.device, p.dtype) if name in grads else None
        learn.train_iter, learn.pct_train = spec["learner"]["train_iter"], spec["learner"]["pct_train"]
        for dl, state in zip(learn.dls.loaders, own["loaders"]):
            dl.load_state_dict(state)
        set_rng_state(_decode(own["rng"], tensors))


class FitStage(Callback):
    """Names the stage of a recipe of several fits that is running (``fine_tune``: ``"fine_tune:frozen"`` then
    ``"fine_tune:unfrozen"``), so a checkpoint says which fit to resume; resuming in another stage is refused.

    Args:
        stage: the stage's name.

    Examples:
        >>> FitStage("fine_tune:frozen").state_dict()
        {'stage': 'fine_tune:frozen'}
    """

    def __init__(self, stage: str) -> None:
        self.stage = stage

    def state_dict(self) -> dict[str, Any]:
        """The stage's name."""
        return {"stage": self.stage}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Check that the checkpoint was taken in this stage."""
        if state.get("stage") != self.stage:
            raise ValueError(f"the checkpoint was taken in stage {state.get('stage')!r}, this fit is {self.stage!r}")


class Checkpoint(Callback):
    """Save everything a fit needs to resume exactly (see the module doc) every ``every_n_batches`` training batches
    and/or every ``every_epoch`` epochs, to ``learn.path / learn.model_dir / <fname>_<sequence>.ckpt``, atomically;
    the newest ``keep`` files stay. Resume with ``fit(..., resume="auto")`` (or the file's path).

    It runs after the other callbacks (``order`` 90), so the state it saves includes this batch's or epoch's records.

    Args:
        every_n_batches: save after every this many training batches (counted over the fit); ``None``: never.
        every_epoch: save at the end of every epoch (``True``), every ``n`` epochs, or never (``False``).
        keep: how many of the newest checkpoints to keep (older ones are deleted after each save).
        fname: the files' name before the sequence number.

    Examples:
        >>> import tempfile
        >>> from lamina.data import DataLoader, DataLoaders
        >>> from lamina.learner import Learner
        >>> from lamina.core import set_seed
        >>> x = torch.randn(64, 2); y = (x[:, 0] > 0).long()
        >>> def run(resume=None, crash=()):
        ...     set_seed(0)
        ...     dls = DataLoaders(DataLoader((x, y), bs=8, shuffle=True))
        ...     learn = Learner(dls, torch.nn.Linear(2, 2), path=folder, logger=None, show_progress=False)
        ...     try:
        ...         learn.fit_one_cycle(3, 0.1, cbs=[Checkpoint(every_n_batches=5), *crash], resume=resume)
        ...     except RuntimeError:
        ...         pass
        ...     return learn.model.weight.detach().clone()
        >>> folder = tempfile.mkdtemp()
        >>> class Crash(Callback):
        ...     def after_batch(self):
        ...         if self.learn.train_iter == 13: raise RuntimeError("power cut")
        >>> _ = run(crash=[Crash()])  # dies in epoch 1, after the checkpoint of batch 10
        >>> resumed = run(resume="auto")
        >>> folder = tempfile.mkdtemp()
        >>> torch.equal(resumed, run())
        True
    """

    order = 90
    run_valid = False

    def __init__(
        self, every_n_batches: int | None = None, every_epoch: bool | int = True, keep: int = 2,
        fname: str = "checkpoint",
    ) -> None:  # fmt: skip
        if every_n_batches is not None and (isinstance(every_n_batches, bool) or not isinstance(every_n_batches, int)
                                            or every_n_batches < 1):  # fmt: skip
            raise ValueError(f"every_n_batches must be None or an int >= 1, got {every_n_batches!r}")
        if not isinstance(every_epoch, int) or every_epoch < 0:
            raise ValueError(f"every_epoch must be True, False or an int >= 1 (every n epochs), got {every_epoch!r}")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be an int >= 1 (checkpoints kept), got {keep!r}")
        if not fname or _MAIN.match(f"{fname}.ckpt") or "/" in fname:
            raise ValueError(f"fname must be a plain name not ending in _<digits>, got {fname!r}")
        self.every_n_batches, self.every_epoch, self.keep, self.fname = every_n_batches, int(every_epoch), keep, fname
        self.last: Path | None = None

    def before_fit(self) -> None:
        self._next = _next_sequence(self.learn.path / self.learn.model_dir)

    def after_batch(self) -> None:
        n = self.every_n_batches
        if n and self.learn.train_iter % n == 0:
            self._save(epoch_done=False)

    def after_epoch(self) -> None:
        if self.every_epoch and (self.learn.epoch + 1) % self.every_epoch == 0:
            self._save(epoch_done=True)

    def _save(self, epoch_done: bool) -> None:
        rank, world_size = distributed.rank(), distributed.world_size()
        folder = self.learn.path / self.learn.model_dir
        file = folder / f"{self.fname}_{self._next:06d}.ckpt"
        self._next += 1
        if rank:
            save_checkpoint(self.learn, file, epoch_done, rank, world_size)
        if world_size > 1:
            import torch.distributed as dist

            dist.barrier()  # every rank's side file is on disk before the main file makes the checkpoint visible
        if rank == 0:
            self.last = save_checkpoint(self.learn, file, epoch_done, rank, world_size)
        self._prune(folder, rank)

    def _prune(self, folder: Path, rank: int) -> None:
        """Delete this rank's files of checkpoints older than the newest ``keep``."""
        side = re.escape(f".rank{rank}") if rank else ""
        pattern = re.compile(rf"^{re.escape(self.fname)}_(\d+){side}\.ckpt$")
        files = sorted((int(m[1]), p) for p in folder.iterdir() if (m := pattern.match(p.name)))
        for _, p in files[: -self.keep]:
            p.unlink(missing_ok=True)
