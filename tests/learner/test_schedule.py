"""Schedules have the documented shapes, and every fit policy drives the learning rate as it promises."""

import numpy as np
import pytest
import torch

from lamina.learner import Callback, Learner
from lamina.learner.schedule import (
    combine_scheds,
    combined_cos,
    minimum,
    sched_cos,
    sched_exp,
    sched_lin,
    sched_no,
    sched_poly,
    slide,
    steep,
    valley,
)
from tests.conftest import mnist_dls, small_cnn


def quiet(learn):
    learn.logger = lambda _: None
    from lamina.learner.progress import ProgressCallback

    return learn.remove_cbs([ProgressCallback])


def lrs_of(learn):
    return np.array([v[-1] for v in learn.recorder.lrs])


@pytest.mark.parametrize(
    "sched,start,end",
    [(sched_lin, 2.0, 4.0), (sched_cos, 2.0, 4.0), (sched_exp, 2.0, 4.0), (sched_no, 2.0, 2.0)],
)
def test_each_schedule_runs_from_start_to_end(sched, start, end):
    f = sched(2.0, 4.0)
    assert f(0.0) == pytest.approx(start) and f(1.0) == pytest.approx(end)


def test_schedules_work_per_parameter_group():
    f = sched_cos(np.array([1e-4, 1e-2]), np.array([1e-6, 1e-4]))
    assert np.allclose(f(1.0), [1e-6, 1e-4]) and f(0.5).shape == (2,)


def test_poly_and_combined_schedules():
    assert sched_poly(1.0, 0.0, 1.0)(0.3) == pytest.approx(0.7)
    f = combined_cos(0.3, 1.0, 2.0, 0.5)
    assert f(0.0) == pytest.approx(1.0) and f(0.3) == pytest.approx(2.0) and f(1.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="sum to 1"):
        combine_scheds([0.5, 0.6], [sched_no(1, 1), sched_no(1, 1)])


def test_suggestions_on_a_textbook_curve():
    lrs = np.logspace(-6, 0, 61)
    # flat, then a long fall between 1e-4 and 1e-2, then an explosion
    loss = np.where(lrs < 1e-4, 2.0, np.where(lrs < 1e-2, 2.0 - (np.log10(lrs) + 4) * 0.8, 0.4 + (lrs - 1e-2) * 50))
    assert minimum(lrs, loss) == pytest.approx(lrs[np.argmin(loss)] / 10)
    assert 1e-4 <= steep(lrs, loss) <= 1e-2
    assert 1e-4 <= valley(lrs, loss) <= 1e-2
    assert 1e-4 <= slide(lrs, loss) <= 1e-2


def test_fit_flat_cos_holds_then_anneals(mnist):
    learn = quiet(Learner(mnist_dls(mnist, 512, 64, bs=32), small_cnn()))
    learn.fit_flat_cos(1, lr=0.01, pct_start=0.5)
    lrs = lrs_of(learn)
    half = len(lrs) // 2
    assert np.allclose(lrs[:half], 0.01) and lrs[-1] < 0.001 and np.all(np.diff(lrs[half:]) <= 0)


def test_fit_sgdr_restarts_each_cycle(mnist):
    learn = quiet(Learner(mnist_dls(mnist, 256, 64, bs=32), small_cnn()))
    learn.fit_sgdr(2, 1, lr_max=0.01, cycle_mult=2)  # cycles of 1 and 2 epochs
    lrs = lrs_of(learn)
    assert len(learn.recorder.values) == 3
    restarts = np.flatnonzero(np.diff(lrs) > 0) + 1
    assert list(restarts) == [8] and lrs[0] == pytest.approx(0.01) and lrs[8] == pytest.approx(0.01, rel=0.05)


def test_fine_tune_trains_the_head_frozen_then_everything_with_discriminative_lrs(mnist):
    def splitter(m):
        return [list(m[:6].parameters()), list(m[6:].parameters())]

    phases = []

    class Watch(Callback):
        def before_fit(self):
            phases.append((self.learn.opt.frozen_idx, self.learn.n_epoch))

    learn = quiet(Learner(mnist_dls(mnist, 256, 64), small_cnn(), splitter=splitter, cbs=[Watch()]))
    learn.fine_tune(1, base_lr=2e-3, freeze_epochs=1)
    assert phases == [(1, 1), (0, 1)]
    last = learn.recorder.lrs[0]  # first batch of the unfrozen phase: lr_max/div, 100x apart between groups
    assert last[1] / last[0] == pytest.approx(100, rel=1e-6)


def test_tta_blends_plain_and_augmented_predictions(mnist):
    from lamina.data import Categorize, Datasets
    from lamina.data.transforms import IntToFloatTensor
    from tests.data.mnist_items import PickImage, PickLabel, RandomShift, mnist_items

    items, splits = mnist_items(mnist, 256, 64)
    dls = Datasets(items, [[PickImage(), RandomShift()], [PickLabel(), Categorize()]], splits=splits).dataloaders(
        bs=32, after_batch=[IntToFloatTensor()]
    )
    learn = quiet(Learner(dls, small_cnn()))
    learn.fit(1, 1e-2)
    preds, _ = learn.tta(n=2, beta=0.5)
    plain, _ = learn.get_preds()
    assert preds.shape == plain.shape == (64, 10) and torch.allclose(preds.sum(1), torch.ones(64), atol=1e-5)
    assert not torch.allclose(preds, plain)  # the augmented passes changed something
