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
from lamina.optim import SGD
from tests.conftest import mnist_dls, small_cnn


def quiet_learner(dls, model=None, **kwargs):
    learn = Learner(dls, model or small_cnn(), **kwargs)
    learn.logger = lambda _: None
    from lamina.learner.progress import ProgressCallback

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


def test_lr_find_leaves_weights_unchanged_and_suggests_a_sane_rate(mnist, tmp_path):
    from tests.conftest import assert_png

    learn = quiet_learner(mnist_dls(mnist, 1024, 64, bs=32))
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    from lamina.learner.schedule import minimum, steep, valley

    sugg = learn.lr_find(num_it=60, suggest_funcs=(valley, minimum, steep))
    after = learn.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert 1e-5 < sugg.valley < 1.0 and set(sugg.lrs) == {"valley", "minimum", "steep"}
    fig = learn.recorder.plot_lr_find(suggestions=sugg.lrs)
    fig.savefig(tmp_path / "lr_find.png")
    assert_png(tmp_path / "lr_find.png")


def test_plot_loss_and_plot_sched_write_pngs(mnist, tmp_path):
    from tests.conftest import assert_png

    learn = quiet_learner(mnist_dls(mnist, 256, 64))
    learn.fit_one_cycle(2, 1e-2)
    learn.recorder.plot_loss(skip_start=0).savefig(tmp_path / "loss.png")
    learn.recorder.plot_sched().savefig(tmp_path / "sched.png")
    assert_png(tmp_path / "loss.png")
    assert_png(tmp_path / "sched.png")


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
    learn = Learner(dls, small_cnn(), metrics=[accuracy], logger=lines.append)
    learn.fit(1)
    err = capsys.readouterr().err
    assert "epoch 1/1 train" in err and "valid" in err  # tqdm bars go to stderr
    assert lines[0].split() == ["epoch", "train_loss", "valid_loss", "accuracy", "time"]
    assert len(lines) == 2 and lines[1].split()[0] == "0"
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)
    assert capsys.readouterr().err == "" and len(lines) == 2
    quiet = Learner(dls, small_cnn(), show_progress=False, logger=None)
    quiet.fit(1)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
