"""The Learner's loop fires every event, obeys what callbacks write, and trains real models."""

import numpy as np
import pytest
import torch
from torch import nn

from lamina.learner import (
    BCEWithLogitsLossFlat,
    Callback,
    CancelBatchException,
    CancelFitException,
    CancelStepException,
    CrossEntropyLossFlat,
    Learner,
    accuracy,
    sort_callbacks,
)
from lamina.learner.progress import ProgressCallback, wants_plain_progress
from lamina.optim import SGD
from tests.conftest import mnist_dls, small_cnn


def quiet_learner(dls, model=None, **kwargs):
    learn = Learner(dls, model or small_cnn(), **kwargs)
    learn.logger = lambda _: None
    learn.remove_cbs([ProgressCallback])
    return learn


class Events(Callback):
    def __init__(self):
        self.seen = []

    def __getattribute__(self, name):
        from lamina.learner.callback import EVENTS

        if name in EVENTS:
            return lambda: self.seen.append(name)
        return super().__getattribute__(name)

    def events(self):
        from lamina.learner.callback import EVENTS

        return list(EVENTS)


def test_the_loop_fires_events_in_order(mnist):
    dls = mnist_dls(mnist, n_train=128, n_valid=64, bs=64)
    ev = Events()
    learn = quiet_learner(dls, cbs=[ev])
    learn.fit(1)
    batch = ["before_batch", "after_pred", "after_loss", "before_backward", "after_backward", "before_step",
             "after_step", "after_batch"]  # fmt: skip
    valid_batch = ["before_batch", "after_pred", "after_loss", "after_batch"]
    expected = ["before_fit", "before_epoch", "before_train", *batch, *batch, "after_train", "before_validate",
                *valid_batch, "after_validate", "after_epoch", "after_fit"]  # fmt: skip
    assert ev.seen == expected


def test_a_callback_that_doubles_the_loss_doubles_the_gradients(mnist):
    grads = {}

    class Grab(Callback):
        def after_backward(self):
            grads[self.key] = [p.grad.clone() for p in self.learn.model.parameters()]
            raise CancelFitException()

    class Double(Callback):
        def after_loss(self):
            self.learn.loss = self.learn.loss * 2

    for key, extra in (("plain", []), ("double", [Double()])):
        torch.manual_seed(0)
        grab = Grab()
        grab.key = key
        quiet_learner(mnist_dls(mnist, n_train=64, n_valid=64, bs=64), cbs=[grab, *extra]).fit(1)
    for g1, g2 in zip(grads["plain"], grads["double"]):
        assert torch.allclose(g2, 2 * g1, atol=1e-6)


def test_cancel_batch_in_after_loss_skips_the_step(mnist):
    dls = mnist_dls(mnist, n_train=128, n_valid=64)

    class Skip(Callback):
        def after_loss(self):
            if self.learn.training:
                raise CancelBatchException()

    class Stepped(Callback):
        n = 0

        def after_step(self):
            Stepped.n += 1

    learn = quiet_learner(dls, cbs=[Skip(), Stepped()])
    before = [p.clone() for p in learn.model.parameters()]
    learn.fit(1)
    assert Stepped.n == 0
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))


def test_cancel_step_fires_after_cancel_step_and_leaves_weights(mnist):
    dls = mnist_dls(mnist, n_train=64, n_valid=64)
    fired = []

    class NoStep(Callback):
        def before_step(self):
            raise CancelStepException()

        def after_cancel_step(self):
            fired.append(self.learn.iter)

    learn = quiet_learner(dls, cbs=[NoStep()])
    w = learn.model[0].weight.clone()
    learn.fit(1)
    assert fired == [0] and torch.equal(w, learn.model[0].weight)


def test_replacing_xb_changes_the_forward_pass_and_the_model_gets_plain_tensors(mnist):
    dls = mnist_dls(mnist, n_train=64, n_valid=64)
    seen = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(784, 10)

        def forward(self, x):
            seen.append((type(x), float(x.abs().sum())))
            return self.lin(x.flatten(1))

    class Zero(Callback):
        def before_batch(self):
            self.learn.xb = (torch.zeros_like(self.learn.xb[0]),)

    quiet_learner(dls, Spy(), cbs=[Zero()]).fit(1)
    assert all(t is torch.Tensor for t, _ in seen)  # typed batches are stripped before the model
    assert all(total == 0.0 for _, total in seen)


def test_callbacks_are_ordered_by_order_and_run_before_after():
    class A(Callback):
        order = 5

    class B(Callback):
        order = 1
        run_after = (A,)

    class C(Callback):
        order = 9
        run_before = ("A",)

    assert [type(c).__name__ for c in sort_callbacks([A(), B(), C()])] == ["C", "A", "B"]


def test_show_training_loop_lists_callbacks_per_event(mnist, capsys):
    learn = quiet_learner(mnist_dls(mnist, 64, 64))
    text = learn.show_training_loop()
    assert "before_train           TrainEvalCallback, Recorder" in text


def test_fit_one_cycle_trains_a_real_model_and_metrics_are_recorded(mnist):
    torch.manual_seed(0)
    learn = quiet_learner(mnist_dls(mnist, 1024, 300), metrics=[accuracy])
    learn.fit_one_cycle(3, 1e-2)
    _, acc = learn.validate()
    assert acc > 0.85, f"accuracy {acc:.3f}"
    assert len(learn.recorder.values) == 3 and learn.recorder.names()[3] == "accuracy"
    assert learn.recorder.values[-1][1] < learn.recorder.values[0][1]  # train loss fell


def test_one_cycle_gives_the_documented_lr_and_momentum_curve(mnist):
    learn = quiet_learner(mnist_dls(mnist, 512, 64, bs=32))
    learn.fit_one_cycle(2, 0.1, div=25, div_final=1e4, pct_start=0.25, moms=(0.95, 0.85, 0.95))
    from lamina.learner.schedule import combined_cos

    lrs = np.array([v[-1] for v in learn.recorder.lrs])
    moms = np.array([v[-1] for v in learn.recorder.moms])
    n = len(lrs)
    pos = np.arange(n) / n  # each batch's position in training when its hypers were set
    assert np.allclose(lrs, [combined_cos(0.25, 0.1 / 25, 0.1, 0.1 / 1e4)(p) for p in pos], rtol=1e-6)
    assert np.allclose(moms, [combined_cos(0.25, 0.95, 0.85, 0.95)(p) for p in pos], rtol=1e-6)
    peak = int(np.argmax(lrs))
    assert lrs[0] == pytest.approx(0.1 / 25) and abs(peak - 0.25 * n) <= 1 and lrs[-1] < 0.1 / 200
    assert np.all(np.diff(lrs[: peak + 1]) >= 0) and np.all(np.diff(lrs[peak:]) <= 0)
    assert moms[0] == pytest.approx(0.95) and moms[peak] == pytest.approx(0.85, abs=1e-3)


def assert_labels_inside(fig, path):
    """Save ``fig`` as a PNG with real content whose axis labels and tick labels all lie inside the picture."""
    from tests.conftest import assert_png

    fig.savefig(path)
    assert_png(path)
    renderer, box = fig.canvas.get_renderer(), fig.bbox

    def drawn_ticks(labels, locs, lim):  # matplotlib keeps labels for ticks outside the view; they are not drawn
        lo, hi = sorted(lim)
        return [t for t, loc in zip(labels, locs) if lo <= loc <= hi]

    for ax in fig.axes:
        texts = [ax.xaxis.label, ax.yaxis.label, *drawn_ticks(ax.get_xticklabels(), ax.get_xticks(), ax.get_xlim()),
                 *drawn_ticks(ax.get_yticklabels(), ax.get_yticks(), ax.get_ylim())]  # fmt: skip
        for t in texts:
            if not t.get_visible() or not t.get_text():
                continue
            e = t.get_window_extent(renderer)
            inside = e.x0 >= box.x0 and e.y0 >= box.y0 and e.x1 <= box.x1 and e.y1 <= box.y1
            assert inside, f"{t.get_text()!r} at {e.extents} is cut off by the figure {box.extents} ({path.name})"


def test_lr_find_leaves_weights_unchanged_and_suggests_a_sane_rate(mnist, tmp_path):

    learn = quiet_learner(mnist_dls(mnist, 1024, 64, bs=32))
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    from lamina.learner.schedule import minimum, steep, valley

    sugg = learn.lr_find(num_it=60, suggest_funcs=(valley, minimum, steep))
    after = learn.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert 1e-5 < sugg.valley < 1.0 and set(sugg.lrs) == {"valley", "minimum", "steep"}
    assert sugg.figure is not None  # drawn by default, like fastai's
    assert_labels_inside(sugg.figure, tmp_path / "lr_find.png")
    assert learn.lr_find(num_it=20, show_plot=False).figure is None


def test_plot_loss_and_plot_sched_write_pngs(mnist, tmp_path):

    learn = quiet_learner(mnist_dls(mnist, 256, 64))
    learn.fit_one_cycle(2, 1e-2)
    assert_labels_inside(learn.recorder.plot_loss(skip_start=0), tmp_path / "loss.png")
    assert_labels_inside(learn.recorder.plot_sched(), tmp_path / "sched.png")


def test_get_preds_streams_activated_predictions_and_decodes(mnist):
    learn = quiet_learner(mnist_dls(mnist, 128, 200), loss_func=CrossEntropyLossFlat())
    inp, preds, targs, dec, losses = learn.get_preds(with_input=True, with_decoded=True, with_loss=True)
    assert preds.shape == (200, 10) and torch.allclose(preds.sum(1), torch.ones(200), atol=1e-5)
    assert torch.equal(dec, preds.argmax(1)) and targs.shape == (200,)
    assert inp[0].shape == (200, 1, 28, 28) and losses.shape == (200,)
    expected = nn.functional.cross_entropy(preds.log(), targs, reduction="none")
    assert torch.allclose(losses, expected, atol=1e-4)
    preds_only = learn.get_preds()
    assert len(preds_only) == 2  # inputs are not kept unless asked


def test_get_preds_decodes_raw_outputs_so_multi_label_thresholds_the_probabilities(mnist):
    from lamina.data import DataLoader, DataLoaders
    from tests.conftest import mnist_tensors

    xt, yt, xv, yv = mnist_tensors(mnist, 64, 100)
    onehot = [nn.functional.one_hot(y, 10).float() for y in (yt, yv)]
    dls = DataLoaders(DataLoader((xt, onehot[0]), bs=32), DataLoader((xv, onehot[1]), bs=50))
    learn = quiet_learner(dls, loss_func=BCEWithLogitsLossFlat())
    _, preds, _, dec = learn.get_preds(with_input=True, with_decoded=True)
    assert torch.equal(dec, preds > 0.5)  # not sigmoid(sigmoid(x)) > 0.5, which is always True
    assert 0 < dec.float().mean() < 1


def test_save_and_load_round_trip_model_and_optimizer(mnist, tmp_path):
    learn = quiet_learner(mnist_dls(mnist, 128, 64), path=tmp_path)
    learn.fit(1)
    file = learn.save("stage1")
    assert file == tmp_path / "models" / "stage1.pth"
    w = {k: v.clone() for k, v in learn.model.state_dict().items()}
    learn.fit(1)
    learn.load("stage1")
    assert all(torch.equal(w[k], v) for k, v in learn.model.state_dict().items())
    with pytest.raises(FileNotFoundError, match=r"learn\.save"):
        learn.load("nope")


def _snapshot(learn):
    model = {k: v.clone() for k, v in learn.model.state_dict().items()}
    opt = learn.opt.state_dict()["groups"]
    return model, [(g["step"], [{n: t.clone() for n, t in d.items()} for d in g["state"]]) for g in opt]


def _unchanged(learn, snap):
    model, opt = _snapshot(learn)
    same_opt = all(s == s0 and all(d.keys() == d0.keys() and all(torch.equal(d[n], d0[n]) for n in d)
                                   for d, d0 in zip(st, st0))
                   for (s, st), (s0, st0) in zip(opt, snap[1]))  # fmt: skip
    return all(torch.equal(model[k], snap[0][k]) for k in model) and same_opt


def test_a_checkpoint_whose_weight_fits_but_bias_does_not_leaves_the_model_untouched(mnist, tmp_path):
    learn = quiet_learner(mnist_dls(mnist, 128, 64), model=nn.Sequential(nn.Flatten(), nn.Linear(784, 10)),
                          path=tmp_path)  # fmt: skip
    learn.fit(1)
    snap = _snapshot(learn)
    bad = {"0.weight": torch.full((10, 784), 7.0), "0.bias": torch.zeros(12)}  # the weight comes first in the file
    (tmp_path / "models").mkdir(exist_ok=True)
    torch.save({"model": {"1.weight": bad["0.weight"], "1.bias": bad["0.bias"]}}, tmp_path / "models" / "bad.pth")
    with pytest.raises(ValueError, match=r"1\.bias has shape \(12,\) in the file but \(10,\).*Nothing was loaded"):
        learn.load("bad")
    assert _unchanged(learn, snap)


def test_a_checkpoint_whose_model_fits_but_optimizer_state_does_not_leaves_both_untouched(mnist, tmp_path):
    dls = mnist_dls(mnist, 128, 64)
    learn = quiet_learner(dls, model=nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), path=tmp_path)
    learn.fit(1)
    snap = _snapshot(learn)
    other = quiet_learner(dls, model=nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), path=tmp_path, opt_func=SGD)
    other.fit(1, lr=0.5)  # different weights, and an SGD state that an Adam cannot take
    other.save("other")
    with pytest.raises(ValueError, match=r"optimizer state does not fit.*nothing was loaded.*with_opt=False"):
        learn.load("other")
    assert _unchanged(learn, snap)
    learn.load("other", with_opt=False)  # the weights alone do fit
    assert torch.equal(learn.model[1].weight, other.model[1].weight)


def test_a_crash_mid_save_keeps_the_last_good_file(mnist, tmp_path, monkeypatch):
    learn = quiet_learner(mnist_dls(mnist, 64, 64), path=tmp_path)
    good = learn.save("ckpt").read_bytes()

    def broken_save(obj, f):
        f.write(b"partial garbage")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        learn.save("ckpt")
    monkeypatch.undo()
    assert (tmp_path / "models" / "ckpt.pth").read_bytes() == good
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["ckpt.pth"]  # no temp file left behind


def test_discriminative_lrs_spread_over_groups_and_freezing_stops_updates(mnist):
    def splitter(m):
        return [list(m[:3].parameters()), list(m[3:6].parameters()), list(m[6:].parameters())]

    learn = quiet_learner(mnist_dls(mnist, 128, 64), splitter=splitter, train_bn=False)
    learn.freeze()
    body_w = learn.model[0].weight.clone()
    head_w = learn.model[8].weight.clone()
    learn.fit(1, lr=slice(1e-4, 1e-2))
    assert [round(h["lr"], 8) for h in learn.opt.hypers] == [1e-4, 1e-3, 1e-2]
    assert torch.equal(body_w, learn.model[0].weight) and not torch.equal(head_w, learn.model[8].weight)
    learn.unfreeze()
    learn.fit(1)
    assert not torch.equal(body_w, learn.model[0].weight)


def test_weight_decay_skips_norms_and_biases_unless_asked(mnist):
    dls = mnist_dls(mnist, 64, 64)

    class ZeroGrad(Callback):
        def before_step(self):
            for p in self.learn.model.parameters():
                p.grad = torch.zeros_like(p)

    for wd_bn_bias in (False, True):
        learn = quiet_learner(dls, opt_func=SGD, lr=1.0, wd=0.1, wd_bn_bias=wd_bn_bias, cbs=[ZeroGrad()])
        nn.init.ones_(learn.model[1].weight)
        bias, bn = learn.model[8].bias.clone(), learn.model[1].weight.clone()
        w = learn.model[8].weight.clone()
        learn.fit(1)
        assert torch.allclose(learn.model[8].weight, w * 0.9)  # one step of decoupled decay on a weight
        changed = not torch.equal(learn.model[8].bias, bias) and not torch.equal(learn.model[1].weight, bn)
        assert changed == wd_bn_bias


def test_loss_is_inferred_from_the_targets(mnist):
    assert isinstance(quiet_learner(mnist_dls(mnist, 64, 64)).loss_func, CrossEntropyLossFlat)


def test_predict_decodes_a_raw_item_through_the_datasets(mnist):
    from lamina.data import Categorize, Datasets
    from lamina.data.transforms import IntToFloatTensor, Normalize
    from tests.data.mnist_items import PickImage, PickLabel, mnist_items

    items, splits = mnist_items(mnist, 512, 100)
    dls = Datasets(items, [[PickImage()], [PickLabel(), Categorize()]], splits=splits).dataloaders(
        bs=64, after_batch=[IntToFloatTensor(), Normalize()]
    )
    learn = quiet_learner(dls, metrics=[accuracy])
    learn.fit_one_cycle(2, 1e-2)
    item = (mnist["x_valid"][5], -1)
    label, idx, probs = learn.predict(item)
    assert isinstance(label, str) and label == learn.dls.vocab[int(idx)]
    assert probs.shape == (10,) and float(probs.sum()) == pytest.approx(1.0, abs=1e-5)


def test_train_bn_keeps_normalization_layers_of_frozen_groups_training(mnist):
    def splitter(m):
        return [list(m[:6].parameters()), list(m[6:].parameters())]

    learn = quiet_learner(mnist_dls(mnist, 128, 64), splitter=splitter)  # train_bn=True by default
    learn.freeze()
    conv_w, bn_w = learn.model[0].weight.clone(), learn.model[1].weight.clone()
    learn.fit(1, lr=1e-2)
    assert torch.equal(conv_w, learn.model[0].weight)
    assert not torch.equal(bn_w, learn.model[1].weight)


def test_progress_bars_and_the_epoch_table_show_and_hide_on_request(mnist, capsys):
    dls = mnist_dls(mnist, 128, 64)
    lines = []
    bars = ProgressCallback(plain=False)  # bars even though pytest's capture is not a terminal
    learn = Learner(dls, small_cnn(), metrics=[accuracy], logger=lines.append, show_progress=False, cbs=[bars])
    learn.fit(1)
    err = capsys.readouterr().err
    assert "epoch 1/1 train" in err and "valid" in err and "\r" in err  # tqdm bars go to stderr
    assert lines[0].split() == ["epoch", "train_loss", "valid_loss", "accuracy", "time", "[device:", "cpu]"]
    assert len(lines) == 2 and lines[1].split()[0] == "0"
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)
    assert capsys.readouterr().err == "" and len(lines) == 2
    quiet = Learner(dls, small_cnn(), show_progress=False, logger=None)
    quiet.fit(1)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_an_epoch_cancelled_in_before_epoch_by_an_earlier_callback_still_gets_a_row(mnist):
    from lamina.learner import CancelEpochException

    class SkipEpochs(Callback):
        order = 0  # before the Recorder (50): the Recorder's before_epoch does not run for those epochs

        def before_epoch(self):
            if self.learn.epoch in (0, 2):
                raise CancelEpochException()

    lines = []
    learn = quiet_learner(mnist_dls(mnist, 128, 64), cbs=[SkipEpochs()])
    learn.logger = lines.append
    learn.fit(3)
    rows = learn.recorder.values
    assert [int(r[0]) for r in rows] == [0, 1, 2] and len(lines) == 4
    assert not np.isnan(rows[1][1]) and not np.isnan(rows[1][2])
    for skipped in (rows[0], rows[2]):  # nothing trained or validated: no stale numbers, a real time
        assert np.isnan(skipped[1]) and np.isnan(skipped[2]) and 0 <= skipped[-1] < 1.0


@pytest.mark.parametrize("name", ["model", "train_iter", "recorder"])
def test_a_callback_reading_a_learner_attribute_on_itself_is_told_to_write_self_learn(mnist, name):
    class Peek(Callback):
        def before_fit(self):
            return getattr(self, name)

    learn = quiet_learner(mnist_dls(mnist, 64, 64), cbs=[Peek()])
    with pytest.raises(AttributeError, match=rf"'Peek' object has no attribute '{name}'.*write self\.learn\.{name}$"):
        learn.fit(1)
    with pytest.raises(AttributeError, match=r"no attribute 'colour'$"):  # not the learner's: no hint
        Peek().colour  # noqa: B018
    assert Peek().events() == ["before_fit"]


def test_progress_is_one_plain_line_per_epoch_when_the_output_is_not_a_terminal(mnist, capsys):
    learn = Learner(mnist_dls(mnist, 256, 64), small_cnn(), logger=None)  # the default progress, auto mode
    learn.fit(3)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert "4 train and 1 valid batches, loss " in lines[0]


def test_bars_stay_for_a_terminal_and_a_notebook_widget():
    import io

    from tqdm import tqdm
    from tqdm.notebook import tqdm as notebook_tqdm

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert not wants_plain_progress(tqdm, Terminal())
    assert wants_plain_progress(tqdm, io.StringIO())
    assert not wants_plain_progress(notebook_tqdm, io.StringIO())


def test_the_learner_goes_where_it_is_told_and_the_fit_names_the_device_first(mnist, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a machine with CUDA, as far as lamina can tell
    dls = mnist_dls(mnist, 128, 64)
    assert dls.device == torch.device("cuda")  # picked by default
    monkeypatch.undo()
    lines = []
    learn = Learner(dls, small_cnn(), logger=lines.append, show_progress=False, device="cpu")  # told otherwise
    assert dls.device == torch.device("cpu") and next(learn.model.parameters()).device.type == "cpu"
    learn.fit(1)
    assert lines[0].endswith("[device: cpu]") and lines[0].split()[:3] == ["epoch", "train_loss", "valid_loss"]
