"""Serve an exported learner over HTTP: ``lamina serve MODEL.lamina`` (the optional extra ``lamina[serve]``).

A thin layer over the public API: :func:`~lamina.learner.load_learner` rebuilds the learner, and one worker thread
(:class:`BatchWorker`) owns it. Requests queue up; the worker takes up to ``max_batch`` of them (waiting at most
``max_wait_ms`` for more after the first), runs them through the model as one batch, and answers each. An image
model runs its batches through its graph form (:func:`lamina.vision.graph.vision_graph`: the validation resize, crop
and normalization as tensor code, the same that ``export_graph`` writes), images of one size stacked together;
other models, and preprocessing with no graph form, through ``learn.dls.test_dl(items)`` + ``learn.get_preds``.
``POST /predict`` takes an image upload (vision), a JSON row (tabular) or a JSON ``{"user": ..., "item": ...}``
(collab); ``GET /health`` describes the model; ``GET /`` is a one-page web UI.

FastAPI and uvicorn are imported inside the functions that need them, so ``import lamina`` stays light. (No
``from __future__ import annotations`` here: FastAPI reads the handlers' annotations, which name its own classes.)
"""

import asyncio
import json
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["BatchWorker", "InputError", "ServedModel", "create_app", "serve"]

MAX_UPLOAD_BYTES = 20 * 1024 * 1024

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lamina serve</title>
<style>
body { font-family: sans-serif; max-width: 40em; margin: 2em auto; color: #222; }
#drop { border: 3px dashed #888; border-radius: 12px; padding: 2em; text-align: center; cursor: pointer; }
#drop.over { border-color: #2a6; background: #efe; }
#preview { width: 8em; image-rendering: pixelated; margin: 1em auto; display: block; }
.row { display: flex; align-items: center; margin: .3em 0; }
.name { width: 8em; } .bar { background: #2a6; height: 1.2em; margin: 0 .5em; }
.error { color: #b00; } textarea { width: 100%; height: 8em; }
</style></head>
<body>
<h1>lamina serve</h1>
<p id="model">loading the model description...</p>
<div id="image-input" hidden>
  <div id="drop">Drop an image here, or click to pick one.
    <input type="file" id="file" accept="image/*" hidden></div>
  <img id="preview" alt="" hidden>
</div>
<div id="json-input" hidden>
  <textarea id="row"></textarea><button id="send">Predict</button>
</div>
<div id="result"></div>
<script>
const result = document.getElementById("result");
function show(answer, ok) {
  result.replaceChildren();
  if (!ok) {
    const p = document.createElement("p");
    p.className = "error"; p.id = "error"; p.textContent = answer.error || JSON.stringify(answer);
    result.append(p); return;
  }
  const h = document.createElement("h2");
  h.id = "label"; h.textContent = "Prediction: " + JSON.stringify(answer.prediction).replace(/^"|"$/g, "");
  result.append(h);
  for (const c of answer.top) {
    const row = document.createElement("div"); row.className = "row";
    const name = document.createElement("span"); name.className = "name"; name.textContent = c.label;
    const bar = document.createElement("span"); bar.className = "bar";
    bar.style.width = (c.probability * 20) + "em";
    const p = document.createElement("span"); p.textContent = (100 * c.probability).toFixed(1) + "%";
    row.append(name, bar, p); result.append(row);
  }
}
async function send(body, headers) {
  result.textContent = "predicting...";
  const response = await fetch("predict?top=5", {method: "POST", body: body, headers: headers});
  show(await response.json(), response.ok);
}
function sendFile(file) {
  const preview = document.getElementById("preview");
  preview.src = URL.createObjectURL(file); preview.hidden = false;
  const form = new FormData(); form.append("file", file); send(form, {});
}
fetch("health").then(r => r.json()).then(h => {
  document.getElementById("model").textContent =
    "A " + h.app + " model (" + h.kind + "). It takes " + h.expects + ".";
  if (h.app === "vision") {
    document.getElementById("image-input").hidden = false;
    const drop = document.getElementById("drop"), input = document.getElementById("file");
    drop.onclick = () => input.click();
    input.onchange = () => { if (input.files.length) sendFile(input.files[0]); };
    drop.ondragover = e => { e.preventDefault(); drop.classList.add("over"); };
    drop.ondragleave = () => drop.classList.remove("over");
    drop.ondrop = e => { e.preventDefault(); drop.classList.remove("over");
                         if (e.dataTransfer.files.length) sendFile(e.dataTransfer.files[0]); };
  } else {
    document.getElementById("json-input").hidden = false;
    const example = h.app === "collab" ? {user: "", item: ""}
                                       : Object.fromEntries(h.columns.map(c => [c, null]));
    document.getElementById("row").value = JSON.stringify(example, null, 1);
    document.getElementById("send").onclick = () =>
      send(document.getElementById("row").value, {"Content-Type": "application/json"});
  }
});
</script>
</body></html>
"""


class InputError(ValueError):
    """A request whose input does not fit the served model; the message says what was expected.

    Examples:
        >>> issubclass(InputError, ValueError)
        True
    """


class BatchWorker:
    """One thread that runs queued items through ``run_batch`` in batches and answers each with a Future.

    ``run_batch(items) -> results`` gets up to ``max_batch`` items: those waiting, plus any that arrive within
    ``max_wait_ms`` after the first. When a batch fails, each of its items is run alone, so one bad item fails
    only its own request. Only this thread calls ``run_batch``.

    Args:
        run_batch: maps a list of items to a list of results, one per item.
        max_batch: most items in one batch.
        max_wait_ms: how long the first item of a batch waits for company.

    Examples:
        >>> worker = BatchWorker(lambda items: [2 * x for x in items], max_batch=4)
        >>> worker.start()
        >>> [f.result() for f in [worker.submit(x) for x in range(3)]]
        [0, 2, 4]
        >>> worker.close()
    """

    def __init__(self, run_batch: Callable[[list[Any]], list[Any]], max_batch: int = 32, max_wait_ms: float = 5.0):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if not max_wait_ms >= 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.run_batch, self.max_batch, self.max_wait = run_batch, max_batch, max_wait_ms / 1000
        self._queue: queue.SimpleQueue[tuple[Any, Future] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="lamina-serve-worker", daemon=True)
        self.batches, self.items, self.largest_batch = 0, 0, 0

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def submit(self, item: Any) -> Future:
        """Queue ``item``; the Future gets its result (or the exception its batch raised)."""
        if not self._thread.is_alive():
            raise RuntimeError("the batch worker is not running: call start() first (or it was closed)")
        future: Future = Future()
        self._queue.put((item, future))
        return future

    def close(self, timeout: float = 10.0) -> None:
        """Stop after the items already queued are answered."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _take(self) -> list[tuple[Any, Future]] | None:
        """The next batch (blocking for its first item); ``None`` when closed."""
        first = self._queue.get()
        if first is None:
            return None
        batch, deadline = [first], time.perf_counter() + self.max_wait
        while len(batch) < self.max_batch:
            try:
                nxt = self._queue.get(timeout=max(deadline - time.perf_counter(), 0.0))
            except queue.Empty:
                break
            if nxt is None:
                self._queue.put(None)  # answer this batch, then stop
                break
            batch.append(nxt)
        return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            self.batches, self.items = self.batches + 1, self.items + len(batch)
            self.largest_batch = max(self.largest_batch, len(batch))
            self._answer(batch)

    def _answer(self, batch: list[tuple[Any, Future]]) -> None:
        try:
            results = self.run_batch([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} items")
        except Exception as e:
            if len(batch) == 1:
                batch[0][1].set_exception(e)
            else:  # find the culprit: each item alone
                for one in batch:
                    self._answer([one])
            return
        for (_, future), result in zip(batch, results):
            future.set_result(result)


def _plain(value: Any) -> Any:
    """A JSON-safe Python value from numpy/torch scalars and arrays."""
    if hasattr(value, "tolist"):  # numpy and torch scalars and arrays
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _ranked(probs: Tensor, labels: Sequence[Any] | None) -> list[dict[str, Any]]:
    """All classes as ``{"label", "index", "probability"}``, most probable first."""
    order = torch.argsort(probs, descending=True).tolist()
    names = labels if labels else list(range(len(probs)))
    return [{"label": _plain(names[i]), "index": i, "probability": float(probs[i])} for i in order]


def _answer(prediction: Any, index: Any, probs: Tensor | None, labels: Sequence[Any] | None) -> dict[str, Any]:
    """One prediction as the JSON the server sends (``top`` is cut to the request's ``top`` later)."""
    top = _ranked(probs, labels) if probs is not None else []
    return {"prediction": _plain(prediction), "index": _plain(index), "top": top}


def _expects(app: str, learn: Any) -> str:
    """What ``POST /predict`` takes for this application, in words with an example (for errors and the page)."""
    if app == "vision":
        return "an image file (PNG, JPEG...) as the multipart form field 'file': curl -F file=@digit.png URL/predict"
    if app == "tabular":
        proc = learn.dls.train.dataset.processor
        return (
            f"a JSON object with one value per column: categories {list(proc.cat_names)} and numbers "
            f"{list(proc.cont_names)} (null for a missing value), e.g. curl -H 'Content-Type: application/json' "
            f"-d '{{\"{(list(proc.cat_names) + list(proc.cont_names))[0]}\": ..., ...}}' URL/predict"
        )
    return 'a JSON object {"user": ..., "item": ...} naming a user and an item seen in training'


class ServedModel:
    """An exported learner as the server sees it: what it expects, how to parse a request, how to predict a batch.

    ``predict_batch`` is the only method that touches the learner: call it from one thread (the batch worker).

    Args:
        learn: a learner from :func:`~lamina.learner.load_learner` (a vision, tabular or collab export).

    Examples:
        >>> ServedModel(object())
        Traceback (most recent call last):
        ...
        ValueError: lamina serve needs a vision, tabular or collab learner (from load_learner), got app None
    """

    def __init__(self, learn: Any) -> None:
        self.app = getattr(learn, "app", None)
        if self.app not in ("vision", "tabular", "collab"):
            raise ValueError(f"lamina serve needs a vision, tabular or collab learner (from load_learner), got app "
                             f"{self.app!r}")  # fmt: skip
        self.learn, self.expects = learn, _expects(self.app, learn)
        self.kind, self.labels, self.columns = "regression", None, []
        if self.app == "vision":
            self.kind, self.labels = learn.target, learn.vocab
            if self.kind in ("points", "mask"):
                raise ValueError(f"lamina serve answers classification and regression models; this vision export "
                                 f"is a {self.kind!r} model: use learn.predict in Python")  # fmt: skip
            self._load_image, self._graph = _vision_runner(learn)
            self._channels = int(next(p for p in learn.model.parameters() if p.ndim == 4).shape[1])
        elif self.app == "tabular":
            proc = learn.dls.train.dataset.processor
            self.columns = [*proc.cat_names, *proc.cont_names]
            self._conts = set(proc.cont_names)
            if proc.target is not None:
                self.kind, self.labels = proc.target.kind, proc.target.vocab_
        else:
            self._known = {k: set(learn.dls.classes[k][1:]) for k in ("user", "item")}  # [0] is "#na#"

    @classmethod
    def load(cls, path: str | Path) -> "ServedModel":
        """Load an export with :func:`~lamina.learner.load_learner` and wrap it."""
        from lamina.learner import load_learner

        return cls(load_learner(path))

    def describe(self) -> dict[str, Any]:
        """The model's application, task kind, labels and expected input, JSON-safe."""
        labels = None if self.labels is None else [_plain(v) for v in self.labels]
        return {"app": self.app, "kind": self.kind, "labels": labels, "expects": self.expects, "columns": self.columns}

    def parse_image(self, data: bytes) -> Any:
        """An uploaded file's bytes decoded as the learner's pipeline decodes images (its image class, orientation
        and draft mode), or an :class:`InputError` saying what was expected."""
        if self.app != "vision":
            raise InputError(f"this {self.app} model takes JSON, not a file upload: send {self.expects}")
        if not data:
            raise InputError(f"the uploaded file is empty: send {self.expects}")
        try:
            return self._load_image(data)
        except Exception as e:
            cause = e.__cause__ or e
            raise InputError(f"the upload is not an image Pillow can read ({type(cause).__name__}: {cause})") from None

    def parse_json(self, obj: Any) -> Any:
        """A JSON request body as one item for the model, or an :class:`InputError` saying what was expected."""
        if self.app == "vision":
            raise InputError(f"this vision model takes an image upload, not JSON: send {self.expects}")
        if not isinstance(obj, dict):
            raise InputError(f"the body must be a JSON object, got {type(obj).__name__}: send {self.expects}")
        if self.app == "tabular":
            return self._parse_row(obj)
        missing = [k for k in ("user", "item") if k not in obj]
        if missing:
            raise InputError(f"the body lacks {missing}: send {self.expects}")
        for k in ("user", "item"):
            if not isinstance(obj[k], (str, int, float)) or obj[k] not in self._known[k]:
                raise InputError(f"unknown {k} {obj[k]!r}: not one of the {len(self._known[k])} {k}s seen in training")
        return (obj["user"], obj["item"])

    def _parse_row(self, obj: dict[str, Any]) -> dict[str, Any]:
        missing = [c for c in self.columns if c not in obj]
        if missing:
            raise InputError(f"the row lacks the columns {missing}: send {self.expects}")
        for c in self.columns:
            value, number = obj[c], isinstance(obj[c], (int, float)) and not isinstance(obj[c], bool)
            if c in self._conts and value is not None and not (number and math.isfinite(value)):
                raise InputError(f"column {c!r} must be a number (or null), got {value!r}")
            if c not in self._conts and not (value is None or number or isinstance(value, str)):
                raise InputError(f"column {c!r} must be a category (a string or number), got {value!r}")
        return {c: obj[c] for c in self.columns}

    def predict_batch(self, items: list[Any]) -> list[dict[str, Any]]:
        """Predictions for a batch of parsed items, each as ``{"prediction", "index", "top"}``."""
        if self.app == "collab":
            with self.learn.no_bar():
                values = self.learn.predict_pairs(items)
            return [_answer(float(v), None, None, None) for v in values]
        if self.app == "vision":
            return self._vision_batch(items)
        return self._tabular_batch(items)

    def _vision_batch(self, items: list[Any]) -> list[dict[str, Any]]:
        learn = self.learn
        arrays = _uint8_arrays(items, self._channels) if self._graph is not None else None
        if self._graph is not None and arrays is not None:
            preds, dec = _run_graph(self._graph, arrays)
        else:
            with learn.no_bar():
                preds, _, dec = learn.get_preds(dl=learn.dls.test_dl(items), with_decoded=True)
        out = []
        for probs, d in zip(preds, dec):
            if self.kind == "single":
                index = int(d)
                out.append(_answer(self.labels[index] if self.labels else index, index, probs, self.labels))
            elif self.kind == "multi":
                hot = torch.nonzero(probs > learn.thresh).flatten().tolist()
                out.append(_answer([self.labels[i] if self.labels else i for i in hot], hot, probs, self.labels))
            else:
                out.append(_answer(d, None, None, None))
        return out

    def _tabular_batch(self, items: list[Any]) -> list[dict[str, Any]]:
        import pandas as pd

        learn = self.learn
        with learn.no_bar():
            preds, _, dec = learn.get_preds(dl=learn.dls.test_dl(pd.DataFrame(items)), with_decoded=True)
        proc = learn.dls.train.dataset.processor
        readable = next(iter(proc.decode_target(dec.float() if dec.dtype == torch.bool else dec).values()))
        out = []
        for i, probs in enumerate(preds):
            if self.kind == "single":
                out.append(_answer(readable[i], int(dec[i]), probs, self.labels))
            elif self.kind == "multi":
                out.append(_answer(readable[i], torch.nonzero(dec[i]).flatten().tolist(), probs, self.labels))
            else:
                out.append(_answer(readable[i], None, None, None))
        return out


def _vision_runner(learn: Any) -> tuple[Callable[[bytes], Any], torch.nn.Module | None]:
    """How the server decodes an upload (the learner's own image-loading step) and, when the learner's validation
    preprocessing has a graph form (:func:`lamina.vision.graph.vision_graph`: the same resize, crop and normalization
    as plain tensor code), the module that runs a batch of decoded images; ``None`` falls back to ``get_preds``."""
    from lamina.learner.graph import GraphError
    from lamina.vision.graph import vision_graph
    from lamina.vision.learner import image_load_step

    try:
        module = vision_graph(learn).module
    except GraphError:
        return image_load_step(learn.dls), None
    device = next(learn.model.parameters()).device
    return image_load_step(learn.dls), module.eval().to(device)  # the server owns its learner: eval for good


def _uint8_arrays(images: list[Any], channels: int) -> list[Any] | None:
    """The decoded images as ``H x W x C`` uint8 arrays, the graph's input; ``None`` when one is not (a 16-bit
    image, another channel count): that batch takes the learner's own pipeline."""
    import numpy as np

    arrays = [np.asarray(im.image) for im in images]
    arrays = [a[..., None] if a.ndim == 2 else a for a in arrays]
    return arrays if all(a.dtype == np.uint8 and a.shape[-1] == channels for a in arrays) else None


def _run_graph(graph: torch.nn.Module, arrays: list[Any]) -> tuple[list[Tensor], list[Tensor]]:
    """The graph's ``(probabilities, indices)`` per ``H x W x C`` uint8 array: arrays of one size run as one batch."""
    import numpy as np

    groups: dict[tuple[int, ...], list[int]] = {}
    for i, a in enumerate(arrays):
        groups.setdefault(a.shape, []).append(i)
    probs: list[Tensor] = [torch.empty(0)] * len(arrays)
    decoded: list[Tensor] = [torch.empty(0)] * len(arrays)
    device = next(graph.parameters()).device
    with torch.inference_mode():
        for ids in groups.values():
            batch = torch.from_numpy(np.stack([arrays[i] for i in ids])).to(device)
            p, d = graph(batch)
            for k, i in enumerate(ids):
                probs[i], decoded[i] = p[k].cpu(), d[k].cpu()
    return probs, decoded


def _require_serve_extra() -> None:
    """Raise an ImportError that names the install command when FastAPI, uvicorn or python-multipart is missing."""
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"lamina serve needs {missing}: pip install 'lamina[serve]'")


async def _read_item(request: Any, model: ServedModel) -> Any:
    """The request's input parsed for ``model``: a multipart upload, a raw image body, or a JSON body."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InputError(f"the form has no file field 'file': send {model.expects}")
        data = await upload.read()
    elif ctype.startswith("image/") or ctype.startswith("application/octet-stream"):
        data = await request.body()
    else:
        body = await request.body()
        try:
            obj = json.loads(body)
        except ValueError:
            raise InputError(
                f"the body is not valid JSON (content type {ctype or 'none'}): send {model.expects}"
            ) from None
        return model.parse_json(obj)
    if len(data) > MAX_UPLOAD_BYTES:
        raise InputError(f"the upload is {len(data)} bytes, more than the {MAX_UPLOAD_BYTES} this server takes")
    return model.parse_image(data)


def create_app(model: ServedModel, max_batch: int = 32, max_wait_ms: float = 5.0) -> Any:
    """A FastAPI app serving ``model``: ``POST /predict``, ``GET /health`` and the web page at ``GET /``.

    The batch worker starts with the app (its lifespan) and stops with it.

    Args:
        model: the served model.
        max_batch: most requests run through the model as one batch.
        max_wait_ms: how long a request waits for others to share its batch.

    Examples:
        >>> from lamina.collab import CollabDataLoaders, collab_learner
        >>> import pandas as pd
        >>> df = pd.DataFrame({"user": [1, 1, 2, 2], "item": ["a", "b", "a", "b"], "rating": [1.0, 2.0, 3.0, 4.0]})
        >>> app = create_app(ServedModel(collab_learner(CollabDataLoaders.from_df(df, bs=2), n_factors=2)))
        >>> sorted(r.path for r in app.routes if r.path in ("/", "/health", "/predict"))
        ['/', '/health', '/predict']
    """
    from contextlib import asynccontextmanager

    _require_serve_extra()
    from fastapi import FastAPI, Query, Request
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    worker = BatchWorker(model.predict_batch, max_batch=max_batch, max_wait_ms=max_wait_ms)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        worker.start()
        yield
        worker.close()

    app = FastAPI(title=f"lamina serve: {model.app} {model.kind}", lifespan=lifespan)

    @app.exception_handler(InputError)
    async def bad_input(request: Request, e: InputError) -> JSONResponse:
        return JSONResponse({"error": str(e), "expected": model.expects}, status_code=422)

    @app.exception_handler(Exception)
    async def failure(request: Request, e: Exception) -> JSONResponse:
        return JSONResponse({"error": f"the server failed: {type(e).__name__}: {e}"}, status_code=500)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        counts = {"batches": worker.batches, "requests": worker.items, "largest_batch": worker.largest_batch}
        return {"status": "ok", **model.describe(), "max_batch": max_batch, "max_wait_ms": max_wait_ms, **counts}

    @app.post("/predict")
    async def predict(request: Request, top: int = Query(5, ge=1, le=10000)) -> Response:
        item = await _read_item(request, model)
        try:
            result = await asyncio.wrap_future(worker.submit(item))
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise InputError(f"the model could not take this input: {type(e).__name__}: {e}") from None
        # the answer is JSON-safe already: written directly, without FastAPI's validation and re-encoding
        return Response(json.dumps({**result, "top": result["top"][:top]}), media_type="application/json")

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE

    return app


def serve(
    path: str | Path, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 32, max_wait_ms: float = 5.0
) -> None:
    """Load the export at ``path`` and serve it with uvicorn until interrupted (``lamina serve``).

    Args:
        path: a file written by ``learn.export()``.
        host: the address to listen on (``0.0.0.0`` for every interface).
        port: the TCP port.
        max_batch: most requests run through the model as one batch.
        max_wait_ms: how long a request waits for others to share its batch.

    Examples:
        >>> serve("no/such/model.lamina")
        Traceback (most recent call last):
        ...
        FileNotFoundError: no exported learner at no/such/model.lamina: call learn.export('no/such/model.lamina') first
    """
    _require_serve_extra()
    model = ServedModel.load(path)
    import uvicorn

    uvicorn.run(create_app(model, max_batch, max_wait_ms), host=host, port=port, access_log=False)
