"""Promises of the model building blocks in lamina.nn.layers."""

import pytest
import torch
from torch import nn

from lamina.nn.layers import (
    AdaptiveConcatPool2d,
    ConvLayer,
    Flatten,
    PixelShuffle_ICNR,
    ResBlock,
    SelfAttention,
    SigmoidRange,
    SqueezeExcite,
)


def test_conv_layer_is_conv_norm_act_with_bias_only_without_norm():
    layer = ConvLayer(3, 8, ks=3, stride=2, norm="batch", act=nn.ReLU)
    assert [type(m) for m in layer] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert layer[0].bias is None
    assert ConvLayer(3, 8, norm=None, act=None)[0].bias is not None
    assert isinstance(ConvLayer(3, 8, norm="instance")[1], nn.InstanceNorm2d)
    assert layer(torch.randn(2, 3, 9, 9)).shape == (2, 8, 5, 5)


def test_conv_layer_zero_norm_outputs_zero_and_bad_norm_is_named():
    layer = ConvLayer(3, 4, act=None, zero_norm=True)
    assert torch.count_nonzero(layer(torch.randn(2, 3, 6, 6))) == 0
    with pytest.raises(ValueError, match="'group'"):
        ConvLayer(3, 4, norm="group")


@pytest.mark.parametrize("expansion", [1, 4])
def test_a_fresh_res_block_is_its_shortcut_followed_by_the_activation(expansion):
    block = ResBlock(16, 32, stride=2, expansion=expansion).train()
    x = torch.randn(2, 16, 7, 7)
    assert torch.allclose(block(x), torch.relu(block.shortcut(x)))
    assert isinstance(block.shortcut[0], nn.AvgPool2d)  # ResNet-D: pool, then the 1x1 projection
    assert block(x).shape == (2, 32, 4, 4)


def test_res_block_keeps_the_identity_shortcut_and_takes_se_sa_and_mish():
    block = ResBlock(32, 32, se=True, sa=True, act=nn.Mish)
    assert len(block.shortcut) == 0
    assert any(isinstance(m, SqueezeExcite) for m in block.convs)
    assert any(isinstance(m, SelfAttention) for m in block.convs)
    assert isinstance(block.act, nn.Mish)
    with pytest.raises(ValueError, match="expansion"):
        ResBlock(16, 30, expansion=4)


def test_self_attention_starts_as_identity_and_mixes_positions_once_gamma_moves():
    sa = SelfAttention(16)
    x = torch.randn(1, 16, 4, 4)
    assert torch.equal(sa(x), x)
    with torch.no_grad():
        sa.gamma.fill_(1.0)
    y = x.clone()
    y[..., 0, 0] += 5  # changing one position changes the output at another position
    assert not torch.allclose(sa(x)[..., 3, 3], sa(y)[..., 3, 3])


def test_pixel_shuffle_icnr_starts_as_a_nearest_neighbour_upsampling():
    up = PixelShuffle_ICNR(6, 4, scale=2, act=None)
    out = up(torch.randn(2, 6, 5, 5))
    assert out.shape == (2, 4, 10, 10)
    blocks = out.unfold(2, 2, 2).unfold(3, 2, 2)  # 2 x 4 x 5 x 5 x 2 x 2: each 2x2 block is one value
    assert torch.allclose(blocks, blocks[..., :1, :1].expand_as(blocks))


def test_sigmoid_range_stays_within_its_bounds():
    out = SigmoidRange(1.0, 5.5)(torch.linspace(-50, 50, 101))
    assert out.min() >= 1.0 and out.max() <= 5.5 and out[50] == pytest.approx(3.25)
    with pytest.raises(ValueError, match="low=2"):
        SigmoidRange(2, 1)


def test_concat_pool_puts_max_then_mean_and_flatten_keeps_the_batch():
    x = torch.arange(8.0).view(1, 2, 2, 2)
    pooled = Flatten()(AdaptiveConcatPool2d()(x))
    assert pooled.tolist() == [[3.0, 7.0, 1.5, 5.5]]
