"""``learn.summary()``: one batch through the model, a row per layer, the totals, and the learner left as it was."""

import torch

from lamina.learner import LearnerSummary
from lamina.tabular import TabularDataLoaders, tabular_learner
from lamina.vision import ImageDataLoaders, vision_learner
from tests.tabular.diamonds_data import CATS, CONTS, Y, diamonds


def state(learn):
    """What summary must not change: every module's mode, every parameter's values, requires_grad and grad."""
    params = [(p.detach().clone(), p.requires_grad, None if p.grad is None else p.grad.clone())
              for p in learn.model.parameters()]  # fmt: skip
    return [m.training for m in learn.model.modules()], params, list(learn.cbs), learn.opt


def assert_same(before, after):
    assert before[0] == after[0]
    assert all(torch.equal(a[0], b[0]) and a[1] == b[1] and (a[2] is None) == (b[2] is None)
               for a, b in zip(before[1], after[1]))  # fmt: skip
    assert before[2] == after[2] and before[3] is after[3]


def vision(mnist_root):
    dls = ImageDataLoaders.from_folder(mnist_root, bs=16, seed=0)
    return vision_learner(dls, "resnet18", pretrained=False, show_progress=False, logger=None)


def test_vision_summary_lists_layers_shapes_and_counts_frozen_parameters(mnist_root, capsys):
    learn = vision(mnist_root)
    learn.freeze()  # the body's parameters are frozen, the head trains
    learn.model.train()
    before = state(learn)
    s = learn.summary()
    assert_same(before, state(learn))
    assert isinstance(s, LearnerSummary) and str(s) in capsys.readouterr().out
    assert s.input_shapes == [(16, 3, 28, 28)]
    first_conv = next(r for r in s.rows if r.type == "Conv2d")
    assert first_conv.output_shape == (16, 64, 14, 14) and first_conv.params == 3 * 64 * 7 * 7
    assert first_conv.trainable == "no"
    assert s.rows[-1].type == "Linear" and s.rows[-1].output_shape == (16, 10) and s.rows[-1].trainable == "yes"
    total = sum(p.numel() for p in learn.model.parameters())
    trainable = sum(p.numel() for p in learn.model.parameters() if p.requires_grad)
    assert (s.total, s.trainable, s.frozen) == (total, trainable, total - trainable) and 0 < trainable < total
    assert sum(r.params for r in s.rows) == total  # every parameter belongs to one row
    assert s.loss == "CrossEntropyLossFlat" and "Recorder" in s.callbacks and "Adam" in s.optimizer


def test_summary_restores_training_mode_and_leaves_gradients_alone(mnist_root):
    learn = vision(mnist_root)
    learn.model.train()
    xb, yb = learn.dls.train.one_batch()
    learn.loss_func(learn.model(xb), yb).backward()  # gradients the summary must not add to
    grads = [p.grad.clone() for p in learn.model.parameters()]
    learn.summary(show=False)
    assert all(m.training for m in learn.model.modules())
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, learn.model.parameters()))


def test_tabular_summary_shows_embeddings_and_the_optimizer_once_built():
    df = diamonds(600)
    dls = TabularDataLoaders.from_df(df, cat_names=CATS, cont_names=CONTS, y_names=Y, valid_pct=0.2, seed=0, bs=32)
    learn = tabular_learner(dls, layers=[20, 10], show_progress=False, logger=None)
    learn.create_opt()
    before = state(learn)
    s = learn.summary(show=False)
    assert_same(before, state(learn))
    embeddings = [r for r in s.rows if r.type == "Embedding"]
    assert len(embeddings) == len(CATS) and all(r.output_shape[0] == 32 for r in embeddings)
    assert s.rows[-1].output_shape == (32, 1) and s.loss == "MSELossFlat"
    assert s.input_shapes == [(32, len(CATS)), (32, len(CONTS))]
    assert "lr 0.01" in s.optimizer and "wd 0.01" in s.optimizer
    text = str(s)
    assert f"total params: {s.total:,}; trainable: {s.total:,}; frozen: 0" in text
