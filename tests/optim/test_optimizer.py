"""Promises of the Optimizer, its factories, OptimWrapper and Lookahead, on a small MLP fit to real data.

The data is scikit-learn's diabetes set (442 patients, 10 features), which ships inside the package.
"""

import copy
import functools
import io

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes
from torch import nn

from lamina.optim import (
    LAMB,
    LARS,
    SGD,
    Adam,
    BaseOptimizer,
    Lion,
    Lookahead,
    Optimizer,
    OptimWrapper,
    QHAdam,
    RAdam,
    RMSProp,
    ranger,
    sgd_step,
    weight_decay,
)

TOL = {"atol": 1e-6, "rtol": 0.0}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run faster and steadier on one thread, above all on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def diabetes() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_diabetes(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    y = (y - y.mean()) / y.std()
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)[:, None]


def make_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.LayerNorm(32), nn.Linear(32, 1))


def groups(model: nn.Sequential) -> list[list[nn.Parameter]]:
    """Three param groups: first linear layer, the norm, the head."""
    return [list(model[0].parameters()), list(model[2].parameters()), list(model[3].parameters())]


def loss_of(model: nn.Module) -> torch.Tensor:
    x, y = diabetes()
    return nn.functional.mse_loss(model(x), y)


def train(model: nn.Module, opt, steps: int) -> list[float]:
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_of(model)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def assert_same_params(a: nn.Module, b: nn.Module, **tol) -> None:
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, msg=lambda m, name=name: f"{name}: {m}", **(tol or TOL))


def torch_groups(model: nn.Sequential, lrs: list[float]) -> list[dict]:
    return [{"params": g, "lr": lr} for g, lr in zip(groups(model), lrs)]


LRS = [0.003, 0.01, 0.03]


def torch_twin(cls: type, lrs: list[float] = LRS, **kwargs):
    """A builder of the torch optimizer ``cls`` over the three groups with learning rates ``lrs``."""
    return lambda model: cls(torch_groups(model, lrs), **kwargs)


def run_twins(make_ours, make_theirs, steps: int = 100) -> tuple[nn.Module, nn.Module]:
    ours_model = make_model()
    theirs_model = copy.deepcopy(ours_model)
    ours, theirs = make_ours(ours_model), make_theirs(theirs_model)
    train(ours_model, ours, steps)
    train(theirs_model, theirs, steps)
    return ours_model, theirs_model


# --- numerics against torch.optim ---------------------------------------------------------------------------------


def test_sgd_with_momentum_matches_torch_sgd_over_100_steps_and_3_groups():
    def ours(m):
        opt = SGD(groups(m), lr=0.1, mom=0.9)
        opt.set_hyper("lr", LRS)
        return opt

    a, b = run_twins(ours, torch_twin(torch.optim.SGD, momentum=0.9))
    assert_same_params(a, b, atol=0.0, rtol=0.0)  # the same operations in the same order: bit for bit


def test_sgd_with_momentum_and_l2_weight_decay_matches_torch_sgd():
    def ours(m):
        return SGD([{"params": g, "lr": lr} for g, lr in zip(groups(m), LRS)], mom=0.9, wd=0.01, decouple_wd=False)

    a, b = run_twins(ours, torch_twin(torch.optim.SGD, momentum=0.9, weight_decay=0.01))
    assert_same_params(a, b, atol=0.0, rtol=0.0)


@pytest.mark.parametrize("foreach", [False, True])
def test_adam_with_l2_matches_torch_adam(foreach):
    def ours(m):
        opt = Adam(groups(m), mom=0.9, sqr_mom=0.999, eps=1e-8, wd=1e-3, decouple_wd=False)
        opt.set_hyper("lr", LRS)
        return opt

    theirs = torch_twin(torch.optim.Adam, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-3, foreach=foreach)
    a, b = run_twins(ours, theirs)
    assert_same_params(a, b)


@pytest.mark.parametrize("foreach", [False, True])
def test_adam_with_decoupled_wd_matches_torch_adamw(foreach):
    def ours(m):
        opt = Adam(groups(m), mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.01)
        opt.set_hyper("lr", LRS)
        return opt

    theirs = torch_twin(torch.optim.AdamW, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01, foreach=foreach)
    a, b = run_twins(ours, theirs)
    assert_same_params(a, b)


def test_radam_matches_torch_radam_including_the_unrectified_start():
    def ours(m):
        opt = RAdam(groups(m), mom=0.9, sqr_mom=0.999, eps=1e-8, wd=0.01)
        opt.set_hyper("lr", LRS)
        return opt

    theirs = torch_twin(torch.optim.RAdam, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, decoupled_weight_decay=True)
    a, b = run_twins(ours, theirs)
    assert_same_params(a, b)


def test_rmsprop_without_momentum_matches_torch_rmsprop():
    def ours(m):
        opt = RMSProp(groups(m), sqr_mom=0.9, eps=1e-8, wd=0.0)
        opt.set_hyper("lr", [lr / 10 for lr in LRS])
        return opt

    a, b = run_twins(ours, torch_twin(torch.optim.RMSprop, [lr / 10 for lr in LRS], alpha=0.9, eps=1e-8))
    assert_same_params(a, b)


def test_no_decay_params_match_a_torch_group_with_weight_decay_zero():
    def ours(m):
        no_decay = [*m[2].parameters(), m[0].bias, m[3].bias]
        return Adam(groups(m), lr=0.01, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.1, no_decay=no_decay)

    def theirs(m):
        decay, keep = [m[0].weight, m[3].weight], [*m[2].parameters(), m[0].bias, m[3].bias]
        groups_ = [{"params": decay}, {"params": keep, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups_, lr=0.01, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.1)

    a, b = run_twins(ours, theirs)
    assert_same_params(a, b)


def test_no_decay_params_are_not_decayed_while_the_others_are():
    kept, decayed = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(3))
    opt = SGD([kept, decayed], lr=0.1, wd=0.5, no_decay=[kept])
    kept.grad, decayed.grad = torch.zeros(3), torch.zeros(3)
    opt.step()
    assert torch.equal(kept.detach(), torch.ones(3))
    torch.testing.assert_close(decayed.detach(), torch.full((3,), 0.95))


def test_optim_wrapper_around_torch_sgd_matches_raw_torch_sgd():
    def ours(m):
        opt = OptimWrapper(torch.optim.SGD, groups(m), lr=0.05, mom=0.5, wd=1e-3)
        opt.set_hypers(lr=LRS, mom=0.9)
        return opt

    a, b = run_twins(ours, torch_twin(torch.optim.SGD, momentum=0.9, weight_decay=1e-3), steps=50)
    assert_same_params(a, b, atol=0.0, rtol=0.0)


def test_optim_wrapper_with_no_decay_matches_lamina_adam_with_no_decay():
    def no_decay(m):
        return [m[0].bias, m[3].bias, *m[2].parameters()]

    def ours(m):
        return Adam(groups(m), lr=0.01, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.1, no_decay=no_decay(m))

    def theirs(m):
        return OptimWrapper(
            torch.optim.AdamW, groups(m), lr=0.01, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.1, no_decay=no_decay(m)
        )

    a, b = run_twins(ours, theirs, steps=50)
    assert_same_params(a, b)


def test_optim_wrapper_maps_lamina_names_onto_torch_settings():
    model = make_model()
    opt = OptimWrapper(torch.optim.Adam(torch_groups(model, LRS)))
    opt.set_hypers(mom=0.8, sqr_mom=0.95, wd=0.1, lr=slice(1e-4, 1e-2))
    assert opt.opt.param_groups[1]["betas"] == (0.8, 0.95)
    assert opt.opt.param_groups[0]["weight_decay"] == 0.1
    assert [h["lr"] for h in opt.hypers] == pytest.approx([1e-4, 1e-3, 1e-2])
    rms = OptimWrapper(torch.optim.RMSprop, groups(make_model()), sqr_mom=0.9, mom=0.5)
    assert rms.opt.param_groups[2]["alpha"] == 0.9 and rms.opt.param_groups[2]["momentum"] == 0.5
    with pytest.raises(ValueError, match=r"unknown hyper-parameter 'nu_1'.*lr"):
        opt.set_hyper("nu_1", 0.5)


# --- hyper-parameters -------------------------------------------------------------------------------------------------


def four_groups() -> list[list[torch.Tensor]]:
    return [[torch.zeros(2, requires_grad=True)] for _ in range(4)]


def test_set_hyper_slice_spreads_geometrically_from_lo_to_hi():
    opt = Adam(four_groups())
    opt.set_hyper("lr", slice(1e-6, 1e-3))
    assert [h["lr"] for h in opt.hypers] == pytest.approx([1e-6, 1e-5, 1e-4, 1e-3])


def test_set_hyper_slice_of_hi_gives_a_tenth_to_all_but_the_last_group():
    opt = Adam(four_groups())
    opt.set_hyper("lr", slice(1e-3))
    assert [h["lr"] for h in opt.hypers] == pytest.approx([1e-4, 1e-4, 1e-4, 1e-3])


def test_set_hyper_takes_scalars_lists_tuples_and_arrays():
    opt = SGD(four_groups(), mom=0.9)
    opt.set_hyper("mom", 0.8)
    assert [h["mom"] for h in opt.hypers] == [0.8] * 4
    opt.set_hyper("lr", np.array([1.0, 2.0, 3.0, 4.0]))
    assert [h["lr"] for h in opt.hypers] == [1.0, 2.0, 3.0, 4.0]
    assert all(type(h["lr"]) is float for h in opt.hypers)
    opt.set_hyper("wd", (0.0, 0.1, 0.2, 0.3))
    assert opt.hypers[3]["wd"] == 0.3


def test_set_hyper_changes_what_the_next_step_does():
    w = nn.Parameter(torch.zeros(1))
    opt = SGD([w], lr=1.0)
    opt.set_hyper("lr", 0.25)
    w.grad = torch.ones(1)
    opt.step()
    assert w.item() == -0.25


def test_set_hyper_errors_name_the_problem():
    opt = Adam(four_groups())
    with pytest.raises(ValueError, match="got 2 values for 4 parameter groups"):
        opt.set_hyper("lr", [1e-3, 1e-2])
    with pytest.raises(ValueError, match="unknown hyper-parameter 'momentum'; this optimizer knows: eps, lr, mom"):
        opt.set_hyper("momentum", 0.9)
    with pytest.raises(ValueError, match=r"lr must be >= 0, got -1.0"):
        opt.set_hyper("lr", -1)
    with pytest.raises(ValueError, match=r"mom must be in \[0, 1\), got 1.0"):
        opt.set_hyper("mom", 1.0)
    with pytest.raises(ValueError, match="both ends must be > 0"):
        opt.set_hyper("lr", slice(0.0, 1e-3))
    with pytest.raises(TypeError, match="lr must be a number, got 'fast'"):
        opt.set_hyper("lr", "fast")


# --- construction -----------------------------------------------------------------------------------------------------


def test_params_can_be_tensors_lists_or_dicts_with_overrides():
    a, b = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    assert len(Adam(iter([a, b])).param_lists) == 1
    assert [len(g) for g in Adam([[a], [b]]).param_lists] == [1, 1]
    opt = Adam([{"params": [a], "lr": 0.5}, {"params": [b]}], lr=0.1)
    assert [h["lr"] for h in opt.hypers] == [0.5, 0.1]


def test_bad_constructor_arguments_raise_clear_errors():
    a = nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match=r"lr must be >= 0, got -1.0"):
        Adam([a], lr=-1.0)
    with pytest.raises(ValueError, match="param group 1 has no tensors"):
        Adam([[a], []])
    with pytest.raises(ValueError, match="params is empty"):
        Adam([])
    with pytest.raises(ValueError, match="appears twice"):
        Adam([[a], [a]])
    with pytest.raises(TypeError, match="param group 0, item 1 is a str"):
        Adam([[a, "b"]])
    with pytest.raises(ValueError, match="unknown hyper-parameters \\['lrr'\\]"):
        Adam([{"params": [a], "lrr": 0.1}])
    with pytest.raises(ValueError, match="not a leaf"):
        Adam([a * 2])
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        Lookahead(Adam([a]), k=0)


# --- freezing, missing grads ------------------------------------------------------------------------------------------


def test_frozen_groups_are_not_updated_and_unfreeze_brings_them_back():
    model = make_model()
    opt = Adam(groups(model), lr=0.01)
    opt.freeze_to(2)
    before = [p.detach().clone() for p in model.parameters()]
    train(model, opt, 3)
    after = list(model.parameters())
    assert all(torch.equal(b, p) for b, p in zip(before[:4], after[:4])), "groups 0 and 1 moved while frozen"
    assert not torch.equal(before[4], after[4]), "the trainable head did not move"
    assert not any(p.requires_grad for g in groups(model)[:2] for p in g)
    opt.unfreeze()
    train(model, opt, 1)
    assert not torch.equal(before[0], model[0].weight)


def test_step_skips_frozen_groups_even_when_their_tensors_hold_gradients():
    frozen, trainable = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    opt = Adam([[frozen], [trainable]], lr=0.1, wd=0.1)
    opt.freeze_to(1)
    frozen.grad, trainable.grad = torch.ones(2), torch.ones(2)  # e.g. left over from before freezing
    opt.step()
    assert torch.equal(frozen.detach(), torch.ones(2))
    assert trainable.detach().lt(1).all()
    assert opt.state_dict()["groups"][0]["step"] == 0


def test_freeze_leaves_only_the_last_group_trainable_and_checks_its_argument():
    opt = SGD(four_groups())
    opt.freeze()
    assert opt.frozen_idx == 3
    assert [g[0].requires_grad for g in opt.param_lists] == [False, False, False, True]
    with pytest.raises(ValueError, match=r"n in \[-4, 4\] for 4 groups, got 5"):
        opt.freeze_to(5)


def test_frozen_groups_stay_put_under_optim_wrapper_too():
    model = make_model()
    opt = OptimWrapper(torch.optim.AdamW, groups(model), lr=0.01)
    train(model, opt, 1)
    opt.freeze_to(-1)
    before = model[0].weight.detach().clone()
    train(model, opt, 3)
    assert torch.equal(before, model[0].weight)


def test_tensors_without_grad_are_skipped_and_get_state_later():
    used, unused = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    opt = Adam([used, unused], lr=0.1, wd=0.1)
    used.grad = torch.ones(2)
    opt.step()
    assert torch.equal(unused.detach(), torch.ones(2)), "a tensor with no gradient was decayed or moved"
    state = opt.state_dict()["groups"][0]["state"]
    assert torch.equal(state[1]["grad_avg"], torch.zeros(2))
    unused.grad = torch.ones(2)
    opt.step()
    assert unused.detach().lt(1).all()


# --- state ------------------------------------------------------------------------------------------------------------


def round_trip(state_dict: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize(
    "factory",
    [
        functools.partial(Adam, lr=0.01, wd=0.01),
        functools.partial(SGD, lr=0.01, mom=0.9),
        functools.partial(ranger, lr=0.01, k=3),
        lambda p: OptimWrapper(torch.optim.AdamW, p, lr=0.01),
    ],
    ids=["adam", "sgd", "ranger", "wrapper"],
)
def test_state_dict_round_trips_through_weights_only_load_and_training_continues_identically(factory):
    model = make_model()
    opt = factory(groups(model))
    opt.set_hyper("lr", [0.01, 0.02, 0.03])
    train(model, opt, 7)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), round_trip(opt.state_dict())
    train(model, opt, 5)
    twin = make_model(seed=1)
    twin.load_state_dict(saved_model)
    twin_opt = factory(groups(twin))
    twin_opt.load_state_dict(saved_opt)
    assert [h["lr"] for h in twin_opt.hypers] == pytest.approx([0.01, 0.02, 0.03])
    train(twin, twin_opt, 5)
    assert_same_params(model, twin, atol=0.0, rtol=0.0)


def test_load_state_dict_refuses_a_state_dict_from_other_groups():
    opt = Adam(groups(make_model()))
    other = Adam(four_groups())
    with pytest.raises(ValueError, match="state dict has 4 groups, this optimizer has 3"):
        opt.load_state_dict(other.state_dict())


def test_clear_state_makes_the_next_step_a_first_step():
    w = nn.Parameter(torch.zeros(2))
    opt = Adam([w], lr=0.1, wd=0.0)
    for _ in range(3):
        w.grad = torch.tensor([1.0, -1.0])
        opt.step()
    opt.clear_state()
    start = w.detach().clone()
    w.grad = torch.tensor([5.0, -0.5])
    opt.step()
    torch.testing.assert_close(w.detach() - start, torch.tensor([-0.1, 0.1]))


# --- Lookahead --------------------------------------------------------------------------------------------------------


def test_lookahead_syncs_slow_weights_every_k_steps():
    w = nn.Parameter(torch.zeros(1))
    opt = Lookahead(SGD([w], lr=1.0), k=3, alpha=0.5)
    seen = []
    for _ in range(6):
        w.grad = torch.ones(1)
        opt.step()
        seen.append(w.item())
    # fast weights walk -1, -2, -3; sync: slow 0 -> -1.5; walk -2.5, -3.5, -4.5; sync: slow -1.5 -> -3
    assert seen == [-1.0, -2.0, -1.5, -2.5, -3.5, -3.0]


def test_lookahead_exposes_the_inner_hypers_and_freezing():
    inner = Adam(four_groups())
    opt = Lookahead(inner)
    opt.set_hyper("lr", slice(1e-3))
    assert opt.hypers is inner.hypers and inner.hypers[0]["lr"] == pytest.approx(1e-4)
    opt.freeze()
    assert inner.frozen_idx == opt.frozen_idx == 3
    assert isinstance(opt, BaseOptimizer)


# --- other optimizers learn -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "factory",
    [
        functools.partial(LAMB, lr=0.02, wd=0.01),
        functools.partial(LARS, lr=0.5, mom=0.9, trust_coeff=0.02),
        functools.partial(Lion, lr=3e-3, wd=0.1),
        functools.partial(QHAdam, lr=0.01),
        functools.partial(RMSProp, lr=3e-3, mom=0.9),
        functools.partial(ranger, lr=0.01),
    ],
    ids=["lamb", "lars", "lion", "qhadam", "rmsprop-momentum", "ranger"],
)
def test_optimizer_fits_the_diabetes_regression(factory):
    model = make_model()
    start = loss_of(model).item()
    losses = train(model, factory(groups(model)), 100)
    assert losses[-1] < 0.6 * start, f"loss went from {start:.3f} to {losses[-1]:.3f}"


def test_a_custom_optimizer_is_a_list_of_steppers():
    model = make_model()
    opt = Optimizer(model.parameters(), [weight_decay, sgd_step], lr=0.05, wd=1e-4)
    start = loss_of(model).item()
    assert train(model, opt, 100)[-1] < 0.6 * start


def test_a_frozen_group_steps_only_tensors_turned_back_on():
    frozen_w, frozen_bn, head = (nn.Parameter(torch.ones(2)) for _ in range(3))
    opt = SGD([[frozen_w, frozen_bn], [head]], lr=0.1)
    opt.freeze_to(1)
    frozen_bn.requires_grad_(True)  # e.g. a normalization layer kept training
    for p in (frozen_w, frozen_bn, head):
        p.grad = torch.ones(2)
    opt.step()
    assert torch.equal(frozen_w.detach(), torch.ones(2))
    assert torch.allclose(frozen_bn.detach(), torch.full((2,), 0.9))
    assert torch.allclose(head.detach(), torch.full((2,), 0.9))
