"""Inference leaves the learner as it found it: one learner serves many threads with the sequential answers."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from lamina.learner import Learner, accuracy
from lamina.learner.progress import ProgressCallback
from tests.conftest import mnist_dls, small_cnn

N_THREADS, PER_THREAD = 8, 25


def _state(learn):
    """What inference must not touch on the learner."""
    return (list(learn.cbs), learn.dl, learn.training, learn.xb, learn.yb, learn.pred, dict(learn._handlers))


def _threads_agree_with_sequential(learn, items, same):
    sequential = [learn.predict(it) for it in items]
    before = _state(learn)
    jobs = [items[(t * 7 + k) % len(items)] for t in range(N_THREADS) for k in range(PER_THREAD)]
    expected = [sequential[(t * 7 + k) % len(items)] for t in range(N_THREADS) for k in range(PER_THREAD)]
    with ThreadPoolExecutor(N_THREADS) as pool:
        got = list(pool.map(learn.predict, jobs))
    assert len(got) == N_THREADS * PER_THREAD
    for (label, idx, probs), (label0, idx0, probs0) in zip(got, expected):
        assert same(label, label0) and torch.equal(idx, idx0)
        assert torch.allclose(probs, probs0, atol=1e-6)
    after = _state(learn)
    assert after[0] == before[0] and after[1] is before[1] and after[2:] == before[2:]


def test_eight_threads_predicting_on_one_vision_learner_get_the_sequential_answers(tmp_path):
    from lamina.datasets import mnist_digits
    from lamina.vision import ImageDataLoaders, Resize
    from lamina.vision.learner import vision_learner

    names = mnist_digits(tmp_path, digits=(1, 3, 7), n=6)
    files = [tmp_path / n for n in names]
    dls = ImageDataLoaders.from_path_func(tmp_path, files, lambda p: p.name[0], seed=0, bs=8, item_tfms=Resize(32))
    torch.manual_seed(0)
    learn = vision_learner(dls, "xresnet18", pretrained=False, lin_ftrs=[16], logger=None)
    probs = {tuple(learn.predict(f)[2].tolist()) for f in files}
    assert len(probs) == len(files), "each item must get its own answer for the comparison to mean anything"
    _threads_agree_with_sequential(learn, files, lambda a, b: a == b)


def test_eight_threads_predicting_on_one_tabular_learner_get_the_sequential_answers():
    from lamina.tabular import TabularDataLoaders, tabular_learner
    from tests.tabular.diamonds_data import CATS, CONTS, Y, diamonds, valid_positions

    df = diamonds(600)
    dls = TabularDataLoaders.from_df(df, cat_names=CATS, cont_names=CONTS, y_names=Y,
                                     valid_idx=valid_positions(len(df)), bs=64, seed=0)  # fmt: skip
    torch.manual_seed(0)
    learn = tabular_learner(dls, logger=None)
    rows = [df.iloc[i] for i in range(0, 600, 30)]
    assert len({round(learn.predict(r)[0], 6) for r in rows}) == len(rows)
    _threads_agree_with_sequential(learn, rows, lambda a, b: a == pytest.approx(b, abs=1e-6))


def test_validate_and_get_preds_from_threads_match_and_leave_recorder_and_metrics_alone(mnist):
    learn = Learner(mnist_dls(mnist, 256, 200), small_cnn(), metrics=[accuracy], logger=None)
    with learn.no_bar():
        learn.fit(1, lr=1e-2)
    history, last = [list(r) for r in learn.recorder.values], list(learn.recorder.last_valid)
    scores, preds = learn.validate(), learn.get_preds()[0]
    with ThreadPoolExecutor(N_THREADS) as pool:
        many = list(pool.map(lambda _: (learn.validate(), learn.get_preds()[0]), range(2 * N_THREADS)))
    for s, p in many:
        assert s == pytest.approx(scores, abs=1e-6) and torch.allclose(p, preds, atol=1e-6)
    assert learn.recorder.values == history and learn.recorder.last_valid == last
    assert any(isinstance(cb, ProgressCallback) for cb in learn.cbs)
