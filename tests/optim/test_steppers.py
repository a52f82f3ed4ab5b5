"""Each stepper computes its formula, checked against a per-tensor reference written out in float64."""

import math

import pytest
import torch

from lamina.optim import (
    adam_step,
    average_grad,
    average_sqr_grad,
    get_state,
    l2_reg,
    lamb_step,
    larc_step,
    lion_step,
    momentum_step,
    qhadam_step,
    radam_step,
    rms_prop_step,
    sgd_step,
    weight_decay,
)

SHAPES = [(3, 2), (4,), (1,)]


def tensors(seed: int, scale: float = 1.0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen) * scale for s in SHAPES]


def positive(seed: int) -> list[torch.Tensor]:
    return [t.abs() + 0.1 for t in tensors(seed)]


def as64(ts: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t.double() for t in ts]


def assert_lists_close(got: list[torch.Tensor], expected: list[torch.Tensor], tol: float = 1e-6) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g.double(), e.double(), atol=tol, rtol=tol)


def test_get_state_creates_zeros_once_and_returns_the_same_list_after():
    state: dict[str, list[torch.Tensor]] = {}
    first = get_state(state, "grad_avg", tensors(0))
    first[0].fill_(2.0)
    again = get_state(state, "grad_avg", tensors(1))
    assert again is first and again[0][0, 0] == 2.0
    assert [t.shape for t in first] == [torch.Size(s) for s in SHAPES]


def test_weight_decay_scales_params_by_one_minus_lr_wd():
    params, grads = tensors(0), tensors(1)
    expected = [p.double() * (1 - 0.1 * 0.3) for p in params]
    weight_decay(params, grads, {}, lr=0.1, wd=0.3)
    assert_lists_close(params, expected)


def test_l2_reg_returns_grad_plus_wd_params_and_leaves_grads_alone():
    params, grads = tensors(0), tensors(1)
    before = [g.clone() for g in grads]
    out = l2_reg(params, grads, {}, wd=0.2)
    assert out is not None
    assert_lists_close(out, [g.double() + 0.2 * p.double() for g, p in zip(grads, params)])
    assert all(torch.equal(g, b) for g, b in zip(grads, before))
    assert l2_reg(params, grads, {}, wd=0.0) is None


def test_average_grad_is_a_momentum_buffer_or_an_ema_with_dampening():
    params, g1, g2 = tensors(0), tensors(1), tensors(2)
    plain: dict[str, list[torch.Tensor]] = {}
    average_grad(params, g1, plain, mom=0.9)
    average_grad(params, g2, plain, mom=0.9)
    assert_lists_close(plain["grad_avg"], [0.9 * a.double() + b.double() for a, b in zip(g1, g2)])
    ema: dict[str, list[torch.Tensor]] = {}
    average_grad(params, g1, ema, mom=0.9, dampening=True)
    average_grad(params, g2, ema, mom=0.9, dampening=True)
    assert_lists_close(ema["grad_avg"], [0.9 * 0.1 * a.double() + 0.1 * b.double() for a, b in zip(g1, g2)])


def test_average_sqr_grad_tracks_the_mean_square():
    params, g1, g2 = tensors(0), tensors(1), tensors(2)
    state: dict[str, list[torch.Tensor]] = {}
    average_sqr_grad(params, g1, state, sqr_mom=0.99)
    average_sqr_grad(params, g2, state, sqr_mom=0.99)
    expected = [0.99 * 0.01 * a.double() ** 2 + 0.01 * b.double() ** 2 for a, b in zip(g1, g2)]
    assert_lists_close(state["sqr_avg"], expected)
    undamped: dict[str, list[torch.Tensor]] = {}
    average_sqr_grad(params, g1, undamped, sqr_mom=0.5, dampening=False)
    assert_lists_close(undamped["sqr_avg"], [a.double() ** 2 for a in g1])


def test_sgd_and_momentum_steps_move_against_the_gradient_or_buffer():
    params, grads, buf = tensors(0), tensors(1), tensors(2)
    expected = [p.double() - 0.1 * g.double() for p, g in zip(params, grads)]
    sgd_step(params, grads, {}, lr=0.1)
    assert_lists_close(params, expected)
    expected = [p.double() - 0.1 * b.double() for p, b in zip(params, buf)]
    momentum_step(params, grads, {"grad_avg": buf}, lr=0.1)
    assert_lists_close(params, expected)


def test_rms_prop_step_divides_by_root_mean_square():
    params, grads, sq, avg = tensors(0), tensors(1), positive(2), tensors(3)
    ref = [p.double() - 0.01 * g.double() / (s.double().sqrt() + 1e-3) for p, g, s in zip(params, grads, sq)]
    rms_prop_step(params, grads, {"sqr_avg": sq}, lr=0.01, eps=1e-3)
    assert_lists_close(params, ref)
    ref = [p.double() - 0.01 * a.double() / (s.double().sqrt() + 1e-3) for p, a, s in zip(params, avg, sq)]
    rms_prop_step(params, grads, {"sqr_avg": sq, "grad_avg": avg}, lr=0.01, eps=1e-3)
    assert_lists_close(params, ref)


@pytest.mark.parametrize("step", [1, 3, 50])
def test_adam_step_is_the_bias_corrected_adam_update(step):
    params, avg, sq = tensors(0), tensors(1, 0.1), positive(2)
    b1, b2, lr, eps = 0.9, 0.99, 0.01, 1e-5
    ref = [
        p.double() - lr * (m.double() / (1 - b1**step)) / ((v.double() / (1 - b2**step)).sqrt() + eps)
        for p, m, v in zip(params, avg, sq)
    ]
    adam_step(params, [], {"grad_avg": avg, "sqr_avg": sq}, lr=lr, mom=b1, sqr_mom=b2, eps=eps, step=step)
    assert_lists_close(params, ref)


def radam_reference(p, m, v, *, lr, b1, b2, eps, step):
    rho_inf = 2 / (1 - b2) - 1
    rho = rho_inf - 2 * step * b2**step / (1 - b2**step)
    m_hat = m / (1 - b1**step)
    if rho <= 5:
        return p - lr * m_hat
    r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
    return p - lr * r * m_hat * math.sqrt(1 - b2**step) / (v.sqrt() + eps)


@pytest.mark.parametrize("step", [1, 5, 6, 40])
def test_radam_step_uses_momentum_until_rho_exceeds_5_then_the_rectified_update(step):
    params, avg, sq = tensors(0), tensors(1, 0.1), positive(2)
    hyper = {"lr": 0.01, "b1": 0.9, "b2": 0.99, "eps": 1e-5, "step": step}
    ref = [radam_reference(p, m, v, **hyper) for p, m, v in zip(as64(params), as64(avg), as64(sq))]
    radam_step(params, [], {"grad_avg": avg, "sqr_avg": sq}, lr=0.01, mom=0.9, sqr_mom=0.99, eps=1e-5, step=step)
    assert_lists_close(params, ref)


def test_qhadam_step_mixes_gradient_and_moments_with_nu():
    params, grads, avg, sq = tensors(0), tensors(1), tensors(2, 0.1), positive(3)
    b1, b2, n1, n2, step = 0.9, 0.99, 0.7, 0.6, 4
    ref = []
    for p, g, m, v in zip(as64(params), as64(grads), as64(avg), as64(sq)):
        num = (1 - n1) * g + n1 * m / (1 - b1**step)
        den = ((1 - n2) * g**2 + n2 * v / (1 - b2**step)).sqrt() + 1e-8
        ref.append(p - 0.01 * num / den)
    state = {"grad_avg": avg, "sqr_avg": sq}
    qhadam_step(params, grads, state, lr=0.01, mom=b1, sqr_mom=b2, eps=1e-8, nu_1=n1, nu_2=n2, step=step)
    assert_lists_close(params, ref)


def test_lamb_step_rescales_each_update_by_its_trust_ratio():
    params, avg, sq = tensors(0), tensors(1, 0.1), positive(2)
    params[2].zero_()  # a zero-norm tensor gets ratio 1
    b1, b2, wd, step = 0.9, 0.99, 0.1, 2
    ref = []
    for p, m, v in zip(as64(params), as64(avg), as64(sq)):
        update = (m / (1 - b1**step)) / ((v / (1 - b2**step)).sqrt() + 1e-6) + wd * p
        ratio = min(p.norm() / update.norm(), 10.0) if p.norm() > 0 else 1.0
        ref.append(p - 0.05 * ratio * update)
    lamb_step(params, [], {"grad_avg": avg, "sqr_avg": sq}, lr=0.05, mom=b1, sqr_mom=b2, eps=1e-6, wd=wd, step=step)
    assert_lists_close(params, ref)


def test_lamb_trust_ratio_is_capped():
    params = [torch.full((4,), 100.0)]
    state = {"grad_avg": [torch.full((4,), 1e-3)], "sqr_avg": [torch.full((4,), 1.0)]}
    lamb_step(params, [], state, lr=1.0, mom=0.0, sqr_mom=0.0, eps=0.0, wd=0.0, step=1, max_trust=10.0)
    torch.testing.assert_close(params[0], torch.full((4,), 100.0 - 10.0 * 1e-3))


@pytest.mark.parametrize("clip", [False, True])
def test_larc_step_scales_by_trust_coeff_norm_ratio(clip):
    params, grads = tensors(0), tensors(1, 1e-3)
    grads[2].zero_()
    ref = []
    for p, g in zip(as64(params), as64(grads)):
        ratio = 0.5 * p.norm() / (g.norm() + 1e-8) if g.norm() > 0 else 1.0
        ref.append(p - 0.1 * (min(ratio, 1.0) if clip else ratio) * g)
    larc_step(params, grads, {}, lr=0.1, trust_coeff=0.5, eps=1e-8, clip=clip)
    assert_lists_close(params, ref, tol=1e-5)


def test_larc_step_follows_the_momentum_buffer_when_there_is_one():
    params, grads, buf = tensors(0), tensors(1), tensors(2)
    ref = [p - 0.1 * (0.02 * p.norm() / b.norm()) * b for p, b in zip(as64(params), as64(buf))]
    larc_step(params, grads, {"grad_avg": buf}, lr=0.1, trust_coeff=0.02, eps=0.0)
    assert_lists_close(params, ref)


def test_lion_step_moves_by_the_sign_and_tracks_a_slower_average():
    params, grads, avg = tensors(0), tensors(1), tensors(2)
    ref_p = [p - 0.01 * torch.sign(0.9 * m + 0.1 * g) for p, g, m in zip(as64(params), as64(grads), as64(avg))]
    ref_m = [0.99 * m + 0.01 * g for g, m in zip(as64(grads), as64(avg))]
    state = {"grad_avg": avg}
    lion_step(params, grads, state, lr=0.01, mom=0.9, sqr_mom=0.99)
    assert_lists_close(params, ref_p)
    assert_lists_close(state["grad_avg"], ref_m)
