"""Forward hooks made safe to use (``Hook``, ``Hooks``: removed on ``remove()`` or when a ``with`` block ends), the
output shapes of a model's layers (``model_sizes``), and ``ActivationStats``, which records how the activations of
chosen layers are distributed during training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lamina.learner.callback import Callback

__all__ = ["ActivationStats", "Hook", "Hooks", "activation_stats", "hook_output", "hook_outputs", "model_sizes"]

HookFunc = Callable[[nn.Module, tuple[Any, ...], Any], Any]


def _store_output(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> Any:
    return output


def _detached(o: Any, cpu: bool) -> Any:
    """``o`` (a tensor or a nested tuple/list of them) detached from the graph, and on the CPU when ``cpu``."""
    if isinstance(o, Tensor):
        o = o.detach()
        return o.cpu() if cpu else o
    if isinstance(o, (tuple, list)):
        return type(o)(_detached(v, cpu) for v in o)
    return o


class Hook:
    """A forward hook on ``module`` that keeps ``fn(module, inputs, output)`` of the last call in ``stored``.

    Remove it with ``remove()``, or use it as a context manager: it is removed when the block ends.

    Args:
        module: the module to watch.
        fn: computes what to store; the module's output when ``None``.
        detach: detach inputs and output from the autograd graph before ``fn`` sees them.
        cpu: also move them to the CPU.

    Examples:
        >>> layer = nn.Linear(2, 3)
        >>> with Hook(layer) as hook:
        ...     _ = layer(torch.ones(4, 2))
        >>> hook.stored.shape, hook.stored.requires_grad, len(layer._forward_hooks)
        (torch.Size([4, 3]), False, 0)
    """

    def __init__(self, module: nn.Module, fn: HookFunc | None = None, detach: bool = True, cpu: bool = False) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(f"Hook needs an nn.Module, got {type(module).__name__}")
        self.module, self.fn, self.detach, self.cpu = module, fn or _store_output, detach, cpu
        self.stored: Any = None
        self.removed = False
        self._handle = module.register_forward_hook(self._call)

    def _call(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if self.detach:
            inputs, output = _detached(inputs, self.cpu), _detached(output, self.cpu)
        self.stored = self.fn(module, inputs, output)

    def remove(self) -> None:
        """Take the hook off the module (safe to call twice)."""
        if not self.removed:
            self._handle.remove()
            self.removed = True

    def __enter__(self) -> Hook:
        return self

    def __exit__(self, *args: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"Hook({type(self.module).__name__}, removed={self.removed})"


class Hooks:
    """One ``Hook`` per module, removed together; ``stored`` lists what each keeps, in module order.

    Args:
        modules: the modules to watch.
        fn: computes what to store (see ``Hook``).
        detach: detach before ``fn`` sees the tensors.
        cpu: move them to the CPU.

    Examples:
        >>> model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
        >>> with Hooks(model) as hooks:
        ...     _ = model(torch.ones(5, 2))
        >>> [tuple(o.shape) for o in hooks.stored]
        [(5, 4), (5, 4), (5, 1)]
    """

    def __init__(
        self, modules: Iterable[nn.Module], fn: HookFunc | None = None, detach: bool = True, cpu: bool = False
    ) -> None:
        self.hooks = [Hook(m, fn, detach=detach, cpu=cpu) for m in modules]

    def __getitem__(self, i: int) -> Hook:
        return self.hooks[i]

    def __len__(self) -> int:
        return len(self.hooks)

    def __iter__(self) -> Iterator[Hook]:
        return iter(self.hooks)

    @property
    def stored(self) -> list[Any]:
        """What each hook stored on the last forward pass."""
        return [h.stored for h in self.hooks]

    def remove(self) -> None:
        """Take every hook off its module."""
        for h in self.hooks:
            h.remove()

    def __enter__(self) -> Hooks:
        return self

    def __exit__(self, *args: object) -> None:
        self.remove()


def hook_output(module: nn.Module, detach: bool = True, cpu: bool = False) -> Hook:
    """A ``Hook`` keeping the output of ``module``.

    Args:
        module: the module to watch.
        detach: detach the output from the autograd graph.
        cpu: move it to the CPU.

    Examples:
        >>> layer = nn.ReLU()
        >>> with hook_output(layer) as hook:
        ...     _ = layer(torch.tensor([-1.0, 2.0]))
        >>> hook.stored
        tensor([0., 2.])
    """
    return Hook(module, detach=detach, cpu=cpu)


def hook_outputs(modules: Iterable[nn.Module], detach: bool = True, cpu: bool = False) -> Hooks:
    """``Hooks`` keeping the outputs of ``modules`` (e.g. the encoder stages a U-Net connects across).

    Args:
        modules: the modules to watch.
        detach: detach the outputs from the autograd graph (keep them attached to back-propagate through them).
        cpu: move them to the CPU.

    Examples:
        >>> model = nn.Sequential(nn.Linear(2, 3), nn.Tanh())
        >>> with hook_outputs(model, detach=False) as hooks:
        ...     _ = model(torch.ones(1, 2))
        >>> [o.requires_grad for o in hooks.stored]
        [True, True]
    """
    return Hooks(modules, detach=detach, cpu=cpu)


def _input_channels(model: nn.Module) -> int:
    """The channels (or features) the first convolution or linear layer of ``model`` expects."""
    for m in model.modules():
        for attr in ("in_channels", "in_features"):
            if isinstance(getattr(m, attr, None), int):
                return int(getattr(m, attr))
    raise ValueError(
        f"cannot tell how many input channels {type(model).__name__} expects (no layer with in_channels or "
        "in_features): pass n_in=..."
    )


def model_sizes(model: nn.Module, size: Sequence[int], n_in: int | None = None) -> list[torch.Size]:
    """The output shape of each child of ``model`` for one input of spatial size ``size``.

    Runs one item of zeros through the model in eval mode without gradients; the model's mode is restored.

    Args:
        model: the network (its children are measured, e.g. the stages of an encoder).
        size: the input's spatial size, e.g. ``(64, 64)``.
        n_in: input channels; read from the first layer with ``in_channels`` / ``in_features`` when ``None``.

    Examples:
        >>> body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2))
        >>> [tuple(s) for s in model_sizes(body, (32, 32))]
        [(1, 8, 16, 16), (1, 8, 16, 16), (1, 16, 7, 7)]
    """
    n_in = _input_channels(model) if n_in is None else n_in
    param = next(model.parameters(), None)
    x = torch.zeros(1, n_in, *size, device=param.device if param is not None else None)
    was_training = model.training
    model.eval()
    try:
        with hook_outputs(list(model.children())) as hooks, torch.no_grad():
            model(x)
        return [o.shape for o in hooks.stored]
    finally:
        model.train(was_training)


def activation_stats(
    output: Tensor, near_zero: float = 0.01, bins: int = 40, hist_max: float = 10.0
) -> tuple[Tensor, Tensor]:
    """The mean, the std and the fraction of near-zero values of ``output``, and a histogram of its magnitudes.

    Args:
        output: a layer's activations.
        near_zero: values with ``|a| <= near_zero`` count as near zero.
        bins: histogram bins.
        hist_max: the histogram spans ``|a|`` in ``[0, hist_max]``.

    Returns:
        ``(stats, hist)``: ``stats = [mean, std, near-zero fraction]`` (float32) and ``hist`` of ``bins`` counts.

    Examples:
        >>> stats, hist = activation_stats(torch.tensor([0.0, 0.0, 1.0, 3.0]), bins=4, hist_max=4.0)
        >>> stats.tolist(), hist.tolist()
        ([1.0, 1.4142135381698608, 0.5], [2.0, 1.0, 0.0, 1.0])
    """
    a = output.detach().float().flatten()
    std = a.std() if a.numel() > 1 else torch.zeros((), device=a.device)
    stats = torch.stack([a.mean(), std, (a.abs() <= near_zero).float().mean()])
    return stats, torch.histc(a.abs(), bins=bins, min=0.0, max=hist_max)


def _default_modules(model: nn.Module) -> list[nn.Module]:
    """The leaf modules with parameters (convolutions, linear and normalization layers)."""
    return [m for m in model.modules() if not list(m.children()) and any(True for _ in m.parameters(recurse=False))]


class ActivationStats(Callback):
    """Records, per training batch and per layer, the mean, the std and the fraction of near-zero activations, and a
    histogram of their magnitudes.

    Hooks are put on in ``before_fit`` and taken off in ``after_fit``. ``stats`` is ``(batches, layers, 3)``;
    ``hists`` is ``(batches, layers, bins)``.

    Args:
        modules: the layers to watch; every leaf module with parameters when ``None``.
        every: record one training batch in ``every``; every batch when ``None``.
        near_zero: values with ``|a| <= near_zero`` count as near zero.
        bins: histogram bins (over ``|a|`` in ``[0, hist_max]``).
        hist_max: the histogram's upper bound.

    Examples:
        >>> ActivationStats(every=2).every
        2
        >>> a = ActivationStats(); a.load_state_dict({"stats": torch.zeros(4, 2, 3), "hists": torch.zeros(4, 2, 40)})
        >>> a.stats.shape
        torch.Size([4, 2, 3])
    """

    order = -5
    run_valid = False

    def __init__(
        self,
        modules: Sequence[nn.Module] | None = None,
        every: int | None = None,
        near_zero: float = 0.01,
        bins: int = 40,
        hist_max: float = 10.0,
    ) -> None:
        if every is not None and every < 1:
            raise ValueError(f"every must be >= 1 (record one batch in `every`) or None, got {every}")
        if bins < 1 or hist_max <= 0:
            raise ValueError(f"bins must be >= 1 and hist_max > 0, got bins={bins}, hist_max={hist_max}")
        self.modules = list(modules) if modules is not None else None
        self.every, self.near_zero, self.bins, self.hist_max = every, near_zero, bins, hist_max
        self.hooks: Hooks | None = None
        self._stats: list[Tensor] = []
        self._hists: list[Tensor] = []
        self._recording = False

    def _hook_fn(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> Any:
        if not (self._recording and isinstance(output, Tensor)):
            return None
        return activation_stats(output, self.near_zero, self.bins, self.hist_max)

    def before_fit(self) -> None:
        self._remove()
        modules = self.modules if self.modules is not None else _default_modules(self.learn.model)
        if not modules:
            raise ValueError("ActivationStats found no layer to watch in the model: pass modules=[...]")
        self.layer_names = [type(m).__name__ for m in modules]
        self._stats, self._hists = [], []
        self.hooks = Hooks(modules, self._hook_fn)

    def state_dict(self) -> dict[str, Any]:
        """The statistics and histograms recorded so far (a resumed fit goes on adding to them)."""
        return {"stats": torch.stack(self._stats) if self._stats else None,
                "hists": torch.stack(self._hists) if self._hists else None}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self._stats = list(state["stats"].unbind()) if state["stats"] is not None else []
        self._hists = list(state["hists"].unbind()) if state["hists"] is not None else []

    def before_batch(self) -> None:
        self._recording = self.every is None or self.learn.train_iter % self.every == 0

    def after_pred(self) -> None:
        if not self._recording or self.hooks is None:
            return
        self._recording = False
        stored = self.hooks.stored
        if any(s is None for s in stored):
            return
        self._stats.append(torch.stack([s[0] for s in stored]))
        self._hists.append(torch.stack([s[1] for s in stored]))
        for h in self.hooks:
            h.stored = None

    def after_train(self) -> None:
        self._recording = False

    def after_fit(self) -> None:
        self._remove()

    def after_cancel_fit(self) -> None:
        self._remove()

    def _remove(self) -> None:
        if self.hooks is not None:
            self.hooks.remove()
            self.hooks = None

    @property
    def stats(self) -> Tensor:
        """``(batches, layers, 3)``: mean, std, near-zero fraction of each watched layer, per recorded batch."""
        if not self._stats:
            return torch.empty(0, 0, 3)
        return torch.stack(self._stats).cpu()

    @property
    def hists(self) -> Tensor:
        """``(batches, layers, bins)``: histogram of the magnitudes of each watched layer, per recorded batch."""
        if not self._hists:
            return torch.empty(0, 0, self.bins)
        return torch.stack(self._hists).cpu()

    def _check_layer(self, idx: int) -> int:
        n = self.stats.shape[1]
        if not -n <= idx < n:
            raise IndexError(f"layer index {idx} is out of range: {n} layers were recorded (fit first)")
        return idx % n

    def plot_layer_stats(self, idx: int) -> Any:
        """Plot mean, std and near-zero percentage of layer ``idx`` per recorded batch; returns the figure."""
        from matplotlib.figure import Figure

        idx = self._check_layer(idx)
        fig = Figure(figsize=(12, 3.5))
        axs = fig.subplots(1, 3)
        series = self.stats[:, idx].T.numpy()
        for ax, values, title in zip(axs, series, ("mean", "std", "% near zero")):
            ax.plot(values * (100 if title.startswith("%") else 1))
            ax.set_title(f"{self.layer_names[idx]} #{idx}: {title}")
            ax.set_xlabel("recorded batch")
        fig.tight_layout()
        return fig

    def color_dim(self, idx: int | None = None) -> Any:
        """The "colorful dimension" picture: the log histogram of activation magnitudes (rows: bins from 0 up) over
        training (columns: recorded batches), for layer ``idx`` or every layer side by side; returns the figure."""
        from matplotlib.figure import Figure

        layers = [self._check_layer(idx)] if idx is not None else list(range(self.stats.shape[1]))
        fig = Figure(figsize=(3.2 * len(layers), 3.2))
        axs = fig.subplots(1, len(layers), squeeze=False)[0]
        hists = torch.log1p(self.hists).numpy()
        for ax, i in zip(axs, layers):
            ax.imshow(hists[:, i].T, origin="lower", aspect="auto", cmap="viridis",
                      extent=(0, hists.shape[0], 0, self.hist_max))  # fmt: skip
            ax.set_title(f"{self.layer_names[i]} #{i}")
            ax.set_xlabel("recorded batch")
        axs[0].set_ylabel("|activation|")
        fig.tight_layout()
        return fig
