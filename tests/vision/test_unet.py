"""Promises of lamina.vision.models.unet: a U-Net over any encoder keeps the input size, uses its skip connections,
learns a real segmentation task, and leaves no hook behind."""

from __future__ import annotations

import gc
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lamina.data import mnist_sample_arrays
from lamina.vision.models.body import create_body
from lamina.vision.models.unet import DynamicUnet, skip_indices, unet_splitter


def four_stage_encoder(n_in: int = 3, widths: tuple[int, ...] = (8, 16, 16, 32)) -> nn.Sequential:
    """Four strided 3x3 conv stages, each halving the resolution (rounding up)."""
    chans = (n_in, *widths)
    return nn.Sequential(
        *[
            nn.Sequential(nn.Conv2d(a, b, 3, stride=2, padding=1), nn.BatchNorm2d(b), nn.ReLU())
            for a, b in itertools.pairwise(chans)
        ]
    )


def n_forward_hooks(module: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in module.modules())


@pytest.mark.parametrize("size", [(64, 64), (65, 70)])
def test_output_has_the_input_spatial_size(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    unet = DynamicUnet(four_stage_encoder(), n_out=5, img_size=64)
    assert unet(torch.randn(2, 3, *size)).shape == (2, 5, *size)


def test_skips_are_taken_before_each_change_of_resolution() -> None:
    assert skip_indices([(1, 8, 32, 32), (1, 16, 16, 16), (1, 16, 8, 8), (1, 32, 4, 4)]) == [0, 1, 2]
    unet = DynamicUnet(four_stage_encoder(), n_out=2, img_size=64)
    assert len(unet.decoder) == 3
    assert [n_forward_hooks(stage) for stage in unet.encoder] == [1, 1, 1, 0]


def test_options_build_and_keep_the_output_shape() -> None:
    torch.manual_seed(0)
    unet = DynamicUnet(
        four_stage_encoder(widths=(8, 16, 16, 16)), n_out=1, img_size=(48, 64), blur=True, self_attention=True,
        y_range=(-1.0, 1.0), last_cross=False, norm_type="instance",
    )  # fmt: skip
    out = unet(torch.randn(2, 3, 48, 64))
    assert out.shape == (2, 1, 48, 64) and bool((out.abs() < 1).all())
    assert unet.cross is None and any(type(m).__name__ == "SelfAttention" for m in unet.decoder[0].modules())
    bottle = DynamicUnet(four_stage_encoder(), n_out=3, img_size=32, bottle=True)
    assert bottle(torch.randn(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_a_create_body_encoder_works() -> None:
    net = nn.Sequential(four_stage_encoder(n_in=3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 2))
    encoder = create_body(net[0], cut=4, n_in=1)
    unet = DynamicUnet(encoder, n_out=2, img_size=32)
    assert unet(torch.randn(1, 1, 32, 32)).shape == (1, 2, 32, 32)


def test_an_encoder_wrapped_in_a_single_child_is_looked_into() -> None:
    unet = DynamicUnet(nn.Sequential(four_stage_encoder()), n_out=2, img_size=32)
    assert len(unet.decoder) == 3
    assert unet(torch.randn(1, 3, 32, 32)).shape == (1, 2, 32, 32)


def test_the_decoder_uses_the_early_skip_connection() -> None:
    # the second stage is a 1x1 conv of stride 2: it reads only the even pixels of the first stage's output, so a
    # change at odd pixels there reaches the U-Net's output through the skip connection only
    torch.manual_seed(0)
    encoder = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(8, 16, 1, stride=2), nn.ReLU()),
        nn.Sequential(nn.Conv2d(16, 16, 1, stride=2), nn.ReLU()),
    )
    unet = DynamicUnet(encoder, n_out=2, img_size=32).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        before, deep_before = unet(x), encoder(x)

    def bump_odd_pixels(module: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor:
        output = output.clone()
        output[..., 1::2, 1::2] += 5.0
        return output

    handle = encoder[0].register_forward_hook(bump_odd_pixels, prepend=True)
    try:
        with torch.no_grad():
            after, deep_after = unet(x), encoder(x)
    finally:
        handle.remove()
    assert torch.equal(deep_before, deep_after)  # the deeper encoder did not see the change
    assert (after - before).abs().max() > 1e-3


def mnist_masks(n: int, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` real MNIST digits padded to 32x32 (``n x 1 x 32 x 32``, in [0, 1]) and their foreground masks."""
    images = mnist_sample_arrays()["x_train"][start : start + n]
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2))).astype(np.float32) / 255.0
    x = torch.from_numpy(padded)[:, None]
    return x, (x[:, 0] > 0.5).long()


def test_a_tiny_unet_learns_to_segment_mnist_digits() -> None:
    torch.manual_seed(0)
    x_train, y_train = mnist_masks(256)
    x_valid, y_valid = mnist_masks(64, start=2000)
    unet = DynamicUnet(four_stage_encoder(n_in=1, widths=(8, 16, 16, 16)), n_out=2, img_size=32)
    opt = torch.optim.Adam(unet.parameters(), lr=1e-2)

    def valid_loss() -> float:
        unet.eval()
        with torch.no_grad():
            loss = F.cross_entropy(unet(x_valid), y_valid).item()
        unet.train()
        return loss

    initial = valid_loss()
    for step in range(30):
        idx = torch.arange(step * 32, step * 32 + 32) % len(x_train)
        loss = F.cross_entropy(unet(x_train[idx]), y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    final = valid_loss()
    unet.eval()
    with torch.no_grad():
        accuracy = (unet(x_valid).argmax(1) == y_valid).float().mean().item()
    background = 1 - y_valid.float().mean().item()
    assert final < 0.3 * initial
    assert accuracy > background + 0.5 * (1 - background)  # halves the errors of "all background"


def test_no_hook_is_left_on_the_encoder_after_deletion() -> None:
    encoder = four_stage_encoder()
    unet = DynamicUnet(encoder, n_out=2, img_size=32)
    unet(torch.randn(1, 3, 32, 32))
    assert n_forward_hooks(encoder) == 3
    del unet
    gc.collect()
    assert n_forward_hooks(encoder) == 0


def test_remove_hooks_takes_them_off_and_the_model_says_so() -> None:
    encoder = four_stage_encoder()
    unet = DynamicUnet(encoder, n_out=2, img_size=32)
    unet.remove_hooks()
    unet.remove_hooks()
    assert n_forward_hooks(encoder) == 0
    with pytest.raises(RuntimeError, match="hooks were removed"):
        unet(torch.randn(1, 3, 32, 32))


def test_unet_splitter_gives_encoder_then_the_rest() -> None:
    unet = DynamicUnet(four_stage_encoder(), n_out=2, img_size=32)
    encoder_params, rest = unet_splitter(unet)
    assert {id(p) for p in encoder_params} == {id(p) for p in unet.encoder.parameters()}
    assert len(encoder_params) + len(rest) == len(list(unet.parameters()))
    assert not {id(p) for p in encoder_params} & {id(p) for p in rest}
    with pytest.raises(TypeError, match="DynamicUnet"):
        unet_splitter(nn.Linear(2, 2))


def test_bad_arguments_name_the_value_and_the_fix() -> None:
    with pytest.raises(ValueError, match="n_out must be >= 1"):
        DynamicUnet(four_stage_encoder(), n_out=0, img_size=32)
    with pytest.raises(ValueError, match="img_size must be"):
        DynamicUnet(four_stage_encoder(), n_out=2, img_size=(32, 32, 3))
    with_head = nn.Sequential(four_stage_encoder(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match="cut the classifier head off"):
        DynamicUnet(nn.Sequential(*with_head[0], *with_head[1:]), n_out=2, img_size=32)
