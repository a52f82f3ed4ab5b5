"""Data-parallel training on ``torch.distributed`` (DDP or FSDP), launched by ``torchrun`` or :func:`launch`.

``with learn.distrib_ctx(): learn.fit_one_cycle(...)`` joins the process group the launcher describes in the
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``: torchrun's contract), wraps
the model, shards every loader and adds a :class:`DistributedCallback`; on leaving the block everything is put back,
after an error too. With one process (no launcher, or ``--nproc_per_node=1``) the block changes nothing.

What the N ranks do together is what one process with batch size ``N * bs`` would do (see ``DataLoader.shard``):

- training: global batch ``k`` is cut into N contiguous pieces; each rank's loss is weighted by its share of the
  global batch, so the gradient DDP averages is the gradient of the global batch's mean loss, even for an uneven last
  batch. A rank whose piece of a last batch is empty repeats one item with weight 0. ``learn.loss`` (what the Recorder
  and the other callbacks read) is the global batch's loss, the same on every rank.
- validation: each rank predicts its piece; predictions, targets and inputs are gathered (repeats dropped) before the
  loss, so the loss, metrics and ``get_preds`` are those of the single-process run, on every rank.
- rank 0 only: the per-epoch table (``learn.logger``), callbacks with ``main_process_only`` (progress bars, CSV,
  TensorBoard and experiment loggers) and the files of ``learn.save`` (which every rank calls: the others wait at a
  barrier until the file is written) and ``learn.export`` (the others return at once).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import os
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from lamina.data.load import DataLoader, shard_bounds
from lamina.learner.callback import Callback

if TYPE_CHECKING:
    from lamina.learner.learner import Learner

__all__ = [
    "DistributedCallback",
    "barrier",
    "distrib_ctx",
    "gather_pieces",
    "init_distributed",
    "is_main_process",
    "is_sharded",
    "items_in_batch",
    "launch",
    "load_model_state",
    "local_rank",
    "model_state",
    "piece_sizes",
    "rank",
    "skip_grad_sync",
    "unwrap",
    "world_size",
]

STRATEGIES = ("ddp", "fsdp")


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank in the process group (0 when there is none).

    Examples:
        >>> rank()
        0
    """
    return dist.get_rank() if _active() else 0


def world_size() -> int:
    """The number of processes in the process group (1 when there is none).

    Examples:
        >>> world_size()
        1
    """
    return dist.get_world_size() if _active() else 1


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``, set by torchrun and :func:`launch`; 0 without one).

    Examples:
        >>> local_rank() >= 0
        True
    """
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """Whether this process is rank 0 (the one that logs and writes files); always true without a process group.

    Examples:
        >>> is_main_process()
        True
    """
    return rank() == 0


def barrier() -> None:
    """Wait until every rank reaches this point (nothing to wait for with one process).

    Examples:
        >>> barrier()
    """
    if world_size() > 1:
        dist.barrier()


def init_distributed(backend: str = "gloo", timeout: float | None = None) -> bool:
    """Join the process group the launcher describes in the environment; ``True`` when this call created it.

    Nothing happens when a group already exists or when ``WORLD_SIZE`` is unset or 1 (a plain single process).
    With ``"nccl"`` the CUDA device ``LOCAL_RANK`` becomes the current one.

    Args:
        backend: ``"gloo"`` (CPU) or ``"nccl"`` (CUDA).
        timeout: seconds a collective (and joining) may wait for the other ranks before failing; torch's default
            when ``None``. A short one lets ``torchrun --max-restarts`` restart a group whose rank hangs.

    Examples:
        >>> init_distributed()  # not started by a launcher
        False
    """
    if _active() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    wait = datetime.timedelta(seconds=timeout) if timeout is not None else None
    store, rank_, world = next(dist.rendezvous("env://", timeout=wait or datetime.timedelta(minutes=30)))
    # torchrun's agent keeps one store across restarts of the group: keys of restart k live under their own prefix,
    # or the restarted ranks could read the addresses of the dead group's ranks and connect to nothing
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    store = dist.PrefixStore(f"lamina/attempt{attempt}/", store)
    if wait is None:
        dist.init_process_group(backend, store=store, rank=rank_, world_size=world)
    else:
        dist.init_process_group(backend, store=store, rank=rank_, world_size=world, timeout=wait)
    return True


def piece_sizes(dl: DataLoader, k: int) -> list[int]:
    """How many real items each rank holds of global batch ``k`` of a sharded loader (see ``DataLoader.shard``).

    Args:
        dl: a loader sharded over ``dl.world_size`` ranks.
        k: the batch index in the epoch.

    Examples:
        >>> piece_sizes(DataLoader(torch.arange(10), bs=2).shard(0, 2), 2)
        [1, 1]
    """
    n, global_bs = len(dl.dataset), dl.bs * dl.world_size
    items = min(global_bs, n - k * global_bs)
    return [stop - start for start, stop in (shard_bounds(items, r, dl.world_size) for r in range(dl.world_size))]


def _sharded(dl: DataLoader) -> bool:
    """Whether ``dl`` is sharded over the ranks of the live process group."""
    return dl.world_size > 1 and dl.world_size == world_size()


def items_in_batch(learn: Learner) -> int:
    """The number of items in the learner's current batch, across all ranks when its loader is sharded.

    Examples:
        >>> from types import SimpleNamespace
        >>> fake = SimpleNamespace(dl=DataLoader(torch.arange(10), bs=4), xb=(torch.zeros(4),), yb=())
        >>> items_in_batch(fake)
        4
    """
    if _sharded(learn.dl):
        return sum(piece_sizes(learn.dl, learn.iter))
    from lamina.learner.recorder import batch_size  # the Recorder counts with this function: no import at the top

    return batch_size(learn.xb, learn.yb)


def gather_pieces(obj: Any, sizes: list[int]) -> Any:
    """``obj`` from every rank, each rank's first ``sizes[r]`` rows concatenated in rank order (through tuples,
    lists and dicts of tensors; other values are taken from rank 0). Every rank must call it.

    Args:
        obj: this rank's piece: a tensor (rows first) or a tuple / list / dict of them.
        sizes: the real rows of each rank (a rank may hold more, e.g. one repeated item for an empty piece).

    Examples:
        >>> gather_pieces((torch.arange(3),), [2])  # one process: its first rows
        (tensor([0, 1]),)
    """
    if isinstance(obj, Tensor):
        return _gather_tensor(obj, sizes)
    if isinstance(obj, (tuple, list)):
        return type(obj)(gather_pieces(o, sizes) for o in obj)
    if isinstance(obj, dict):
        return {k: gather_pieces(v, sizes) for k, v in obj.items()}
    return obj


def _gather_tensor(t: Tensor, sizes: list[int]) -> Tensor:
    if len(sizes) == 1:
        return t[: sizes[0]]
    rows = max(max(sizes), 1)
    padded = t.new_zeros((rows, *t.shape[1:]))
    padded[: min(len(t), rows)] = t[:rows]
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:n] for p, n in zip(parts, sizes)])


def is_sharded(model: nn.Module) -> bool:
    """Whether FSDP has sharded ``model``'s parameters (they are DTensors).

    Examples:
        >>> is_sharded(nn.Linear(2, 1))
        False
    """
    if not _active():  # DTensors live on a device mesh, which needs a process group
        return False
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper (what ``learn.model`` is during a training phase under
    :func:`distrib_ctx`); any other model itself.

    Examples:
        >>> m = nn.Linear(2, 1); unwrap(m) is m
        True
    """
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def model_state(model: nn.Module) -> dict[str, Any]:
    """The model's full state dict, without DDP's ``module.`` prefix: ``state_dict()``, or, for an FSDP-sharded
    model, its gathered tensors on rank 0 (every rank must call it then; the others get ``{}``).

    Examples:
        >>> sorted(model_state(nn.Linear(2, 1)))
        ['bias', 'weight']
    """
    model = unwrap(model)
    if not is_sharded(model):
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_model_state(model: nn.Module, state: dict[str, Any], strict: bool = True) -> None:
    """Load a full state dict into ``model``, FSDP-sharded or not (every rank must call it for a sharded one).

    Args:
        model: the network.
        state: a full state dict (as :func:`model_state` and ``learn.save`` write).
        strict: the keys must match.

    Examples:
        >>> m = nn.Linear(2, 1); load_model_state(m, {"weight": torch.ones(1, 2), "bias": torch.zeros(1)})
        >>> m.weight.tolist()
        [[1.0, 1.0]]
    """
    model = unwrap(model)
    if not is_sharded(model):
        model.load_state_dict(state, strict=strict)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=strict))


def skip_grad_sync(model: nn.Module) -> contextlib.AbstractContextManager[Any]:
    """A context in which backward passes of ``model`` do not synchronise gradients across ranks (DDP's
    ``no_sync``, FSDP's ``set_requires_gradient_sync(False)``); gradients accumulate locally until a backward outside
    it. For any other model it does nothing.

    Examples:
        >>> with skip_grad_sync(nn.Linear(2, 1)): pass
    """
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return model.no_sync()
    if not _active():
        return contextlib.nullcontext()
    from torch.distributed.fsdp import FSDPModule

    if isinstance(model, FSDPModule):
        return _fsdp_no_sync(model)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _fsdp_no_sync(model: Any) -> Iterator[None]:
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def _broadcast_buffers(model: nn.Module) -> None:
    """Give every rank rank 0's buffers (batch-norm statistics), as DDP does before each training forward."""
    for b in model.buffers():
        dist.broadcast(b, 0)


class DistributedCallback(Callback):
    """Runs the training phase through ``wrapped`` (DDP or FSDP) and makes the ranks act as one process: weights
    each rank's loss by its share of the global batch, makes ``learn.loss`` the global loss, gathers validation
    batches before the loss. Added and removed by :func:`distrib_ctx`.

    Args:
        wrapped: what the training phase runs (the DDP wrapper, or the FSDP-sharded model).
        plain: the model everywhere else (``wrapped.module`` for DDP, the same module for FSDP).

    Examples:
        >>> DistributedCallback(nn.Linear(2, 1), nn.Linear(2, 1)).name
        'distributed'
    """

    order = -20  # the training phase must run through the wrapper before anything else sees the model

    def __init__(self, wrapped: nn.Module, plain: nn.Module) -> None:
        self.wrapped, self.plain = wrapped, plain
        self._local: Tensor | None = None

    def before_train(self) -> None:
        self.learn.model = self.wrapped

    def after_train(self) -> None:
        self.learn.model = self.plain
        _broadcast_buffers(self.plain)  # each rank updated its statistics on its own piece of the last batch

    def after_fit(self) -> None:
        self.learn.model = self.plain

    def after_pred(self) -> None:
        learn = self.learn
        if learn.training or not _sharded(learn.dl):
            return
        sizes = piece_sizes(learn.dl, learn.iter)
        learn.xb, learn.pred, learn.yb = gather_pieces((learn.xb, learn.pred, learn.yb), sizes)

    def after_loss(self) -> None:
        if self.learn.training:
            self._local = self.learn.loss.detach()

    def before_backward(self) -> None:
        learn = self.learn
        if not _sharded(learn.dl):
            return
        sizes = piece_sizes(learn.dl, learn.iter)
        share = sizes[rank()] * len(sizes) / sum(sizes)  # 1 for every full batch
        if share != 1:
            learn.loss = learn.loss * share

    def after_batch(self) -> None:
        learn, local = self.learn, self._local
        self._local = None
        if local is None or not learn.training or not _sharded(learn.dl):
            return
        sizes = piece_sizes(learn.dl, learn.iter)
        weight = sizes[rank()] / sum(sizes)
        total = local.float() * weight if weight else torch.zeros_like(local, dtype=torch.float32)
        dist.all_reduce(total)
        learn.loss = total


@contextlib.contextmanager
def distrib_ctx(
    learn: Learner,
    strategy: str = "ddp",
    sync_bn: bool = False,
    backend: str | None = None,
    find_unused_parameters: bool = False,
    timeout: float | None = None,
) -> Iterator[Learner]:
    """Train ``learn`` data-parallel on every process the launcher started, inside a ``with`` block.

    Joins (or creates) the process group, wraps the model (``DistributedDataParallel``, or FSDP's ``fully_shard``),
    shards every loader, adds a :class:`DistributedCallback`, silences ``learn.logger`` off rank 0; the block's end
    undoes all of it (after an error too) and leaves the group if it created it. With one process it does nothing.

    Args:
        learn: the learner (every rank builds the same one).
        strategy: ``"ddp"`` (replicated weights) or ``"fsdp"`` (weights, gradients and optimizer state sharded; the
            optimizer is rebuilt on entry and on exit, losing its state).
        sync_bn: turn batch-norm layers into ``SyncBatchNorm`` (statistics over the global batch) for the block.
        backend: ``"gloo"`` or ``"nccl"``; by default NCCL when the learner's device is CUDA, gloo otherwise.
        find_unused_parameters: passed to DDP (for models whose forward skips some parameters).
        timeout: seconds collectives may wait when this block creates the group (see :func:`init_distributed`).

    Examples:
        >>> from lamina.data.load import DataLoaders
        >>> from lamina.learner import Learner
        >>> dls = DataLoaders(DataLoader((torch.randn(8, 2), torch.randn(8, 1)), bs=4))
        >>> learn = Learner(dls, nn.Linear(2, 1), show_progress=False, logger=None)
        >>> with learn.distrib_ctx(): learn.fit(1)  # one process: a plain fit
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    device = learn.dls.device
    on_cuda = device is not None and device.type == "cuda"
    created = init_distributed(backend or ("nccl" if on_cuda else "gloo"), timeout)
    try:
        if world_size() == 1:
            yield learn
            return
        if on_cuda:
            learn.to(torch.device("cuda", local_rank()))
        with _distributed(learn, strategy, sync_bn, find_unused_parameters):
            yield learn
    finally:
        if created:
            dist.destroy_process_group()
            learn.add_cbs([])  # callbacks silenced off rank 0 fire again


@contextlib.contextmanager
def _distributed(learn: Learner, strategy: str, sync_bn: bool, find_unused: bool) -> Iterator[None]:
    """The learner wrapped, sharded and silenced off rank 0 for the block; put back after it."""
    plain, logger, loaders = learn.model, learn.logger, learn.dls.loaders
    shards, seeds = [(dl.rank, dl.world_size) for dl in loaders], [dl.seed for dl in loaders]
    on_cuda = next(plain.parameters(), torch.empty(0)).is_cuda
    if sync_bn and not on_cuda:
        raise ValueError(
            "sync_bn=True needs the model on CUDA: torch's SyncBatchNorm synchronises GPU batches only. On the CPU "
            "leave sync_bn off (each rank then normalises with its own piece's statistics)"
        )
    swapped = _to_sync_batchnorm(plain) if sync_bn else []
    cb: DistributedCallback | None = None
    twin = copy.deepcopy(plain) if strategy == "fsdp" else None  # FSDP shards in place: a plain twin to unshard into
    try:
        if strategy == "ddp":
            ids = [local_rank()] if on_cuda else None
            wrapped: nn.Module = nn.parallel.DistributedDataParallel(
                plain, device_ids=ids, find_unused_parameters=find_unused
            )
            cb = DistributedCallback(wrapped, plain)
        else:
            cb = _fully_shard(learn)
        shared = _shared_seed()  # every rank must make the same order: a loader without a seed gets rank 0's
        for dl in loaders:
            dl.shard(rank(), world_size())
            dl.seed = shared if dl.seed is None else dl.seed
        if not is_main_process():
            learn.logger = _silent
        learn.add_cbs([cb])
        yield
    finally:
        if cb is not None:
            learn.remove_cbs([cb])
        learn.model, learn.logger = plain, logger
        if twin is not None and cb is not None:
            _unshard(learn, cb.plain, twin)
        for dl, (r, n), seed in zip(loaders, shards, seeds):
            dl.shard(r, n)
            dl.seed = seed
        _restore_batchnorm(swapped)


def _shared_seed() -> int:
    """A seed drawn by rank 0 (from torch's generator) and sent to every rank."""
    box = [int(torch.randint(0, 2**31, (1,)).item()) if is_main_process() else 0]
    dist.broadcast_object_list(box, src=0)
    return int(box[0])


def _fully_shard(learn: Learner) -> DistributedCallback:
    """Shard each top-level child with parameters, then the root (FSDP2); the optimizer is rebuilt on the shards."""
    from torch.distributed.fsdp import fully_shard

    model = learn.model
    for child in model.children():
        if any(True for _ in child.parameters()):
            fully_shard(child)
    fully_shard(model)
    if learn.opt is not None:
        learn.create_opt()
    return DistributedCallback(model, model)


def _unshard(learn: Learner, sharded: nn.Module, twin: nn.Module) -> None:
    """Gather the sharded weights into ``twin`` (a plain copy of the model), which becomes ``learn.model``."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    twin.load_state_dict(get_model_state_dict(sharded, options=StateDictOptions(full_state_dict=True)))
    learn.model = twin
    if learn.opt is not None:
        learn.create_opt()


_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _to_sync_batchnorm(model: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """Replace every batch-norm child of ``model`` by a ``SyncBatchNorm`` sharing its parameters and buffers;
    returns what to put back."""
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _BN_TYPES):
                sync = nn.SyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                        child.track_running_stats)  # fmt: skip
                sync.weight, sync.bias = child.weight, child.bias
                sync.running_mean, sync.running_var = child.running_mean, child.running_var
                sync.num_batches_tracked = child.num_batches_tracked
                sync.train(child.training)
                setattr(parent, name, sync)
                swapped.append((parent, name, child))
    if isinstance(model, _BN_TYPES):
        raise ValueError("sync_bn needs a model that contains its batch-norm layers, got a bare batch-norm layer")
    return swapped


def _restore_batchnorm(swapped: list[tuple[nn.Module, str, nn.Module]]) -> None:
    for parent, name, bn in swapped:
        bn.train(getattr(parent, name).training)
        setattr(parent, name, bn)


def _silent(_: str) -> None:
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launched(index: int, fn: Callable[..., Any], n_procs: int, port: int, args: tuple[Any, ...]) -> None:
    """The body of process ``index`` of :func:`launch`: the environment torchrun would set, then ``fn(*args)``."""
    os.environ.update({
        "RANK": str(index), "LOCAL_RANK": str(index), "WORLD_SIZE": str(n_procs), "LOCAL_WORLD_SIZE": str(n_procs),
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
    })  # fmt: skip
    fn(*args)


def launch(fn: Callable[..., Any], n_procs: int, *args: Any) -> None:
    """Run ``fn(*args)`` in ``n_procs`` new local processes set up as ``torchrun --nproc_per_node=n_procs`` would
    (for notebooks and scripts); returns when all have finished. ``fn`` must be importable (defined in a module, not
    in a notebook cell); it calls ``learn.distrib_ctx()`` to join the group.

    A process that raises stops all of them, and its error is raised here as a ``RuntimeError`` naming its rank with
    its traceback.

    Args:
        fn: the function each process runs.
        n_procs: number of processes.
        *args: passed to ``fn``.

    Examples:
        >>> launch(print, 0)
        Traceback (most recent call last):
        ...
        ValueError: n_procs must be >= 1, got 0
    """
    if n_procs < 1:
        raise ValueError(f"n_procs must be >= 1, got {n_procs}")
    import torch.multiprocessing as mp

    try:
        mp.start_processes(_launched, args=(fn, n_procs, _free_port(), args), nprocs=n_procs, start_method="spawn")
    except mp.ProcessRaisedException as e:
        raise RuntimeError(f"launch: rank {e.error_index} (pid {e.error_pid}) failed:\n{e}") from None
    except mp.ProcessExitedException as e:
        raise RuntimeError(
            f"launch: rank {e.error_index} (pid {e.error_pid}) exited with code {e.exit_code} without reporting a "
            "Python error: it was killed (out of memory?), or failed while starting; a script that calls launch "
            "must do so under `if __name__ == '__main__':`"
        ) from None
