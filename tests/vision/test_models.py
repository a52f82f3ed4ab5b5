"""The vision models: torchvision's state-dict layout, registry round trips, xresnet's initialisation."""

import pytest
import torch
from torch import nn

import lamina.vision.models  # noqa: F401 (registers the models)
from lamina.nn.layers import ConvLayer, ResBlock
from lamina.nn.registry import build_model, model_names
from lamina.vision.models import mobilenet_v2, resnet18, resnet50, xresnet18, xresnet50

ARCHS = ["resnet18", "resnet34", "resnet50", "xresnet18", "xresnet34", "xresnet50", "xresnet101", "mobilenet_v2"]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ARCHS)
def test_each_registered_arch_builds_from_json_kwargs_and_runs(name):
    assert name in model_names()
    model = build_model(name, n_out=7)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032), ("mobilenet_v2", 3_504_872)],
)
def test_parameter_counts_are_torchvisions_with_1000_classes(name, expected):
    assert n_params(build_model(name)) == expected


# Shapes read off the architecture: 7x7 stem to 64, stages 64/128/256/512 (x4 in bottlenecks), the projection
# shortcut in the first block of stages 2-4 (and of stage 1 for bottlenecks), the stride on the 3x3 conv.
RESNET18_KEYS = {
    "conv1.weight": (64, 3, 7, 7),
    "bn1.running_var": (64,),
    "layer1.0.conv1.weight": (64, 64, 3, 3),
    "layer1.1.bn2.weight": (64,),
    "layer2.0.conv1.weight": (128, 64, 3, 3),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "layer2.0.downsample.1.running_mean": (128,),
    "layer4.1.conv2.weight": (512, 512, 3, 3),
    "layer4.1.bn2.num_batches_tracked": (),
    "fc.weight": (1000, 512),
    "fc.bias": (1000,),
}
RESNET50_KEYS = {
    "layer1.0.conv1.weight": (64, 64, 1, 1),
    "layer1.0.conv3.weight": (256, 64, 1, 1),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer2.0.conv2.weight": (128, 128, 3, 3),
    "layer3.5.bn3.weight": (1024,),
    "layer4.0.downsample.0.weight": (2048, 1024, 1, 1),
    "fc.weight": (1000, 2048),
}


def test_resnet18_state_dict_has_torchvisions_keys_and_shapes():
    state = resnet18().state_dict()
    assert {k: tuple(state[k].shape) for k in RESNET18_KEYS} == RESNET18_KEYS
    # 20 convs (1 stem + 16 in blocks + 3 shortcuts), 20 BNs of 5 entries each, fc weight and bias
    assert len(state) == 20 + 20 * 5 + 2
    assert "layer1.0.downsample.0.weight" not in state  # stage 1 keeps the shape: identity shortcut


def test_resnet50_state_dict_has_torchvisions_keys_and_the_stride_on_the_3x3():
    model = resnet50()
    state = model.state_dict()
    assert {k: tuple(state[k].shape) for k in RESNET50_KEYS} == RESNET50_KEYS
    assert len(state) == 53 + 53 * 5 + 2  # 1 stem + 48 in blocks + 4 shortcuts convs
    assert model.layer2[0].conv2.stride == (2, 2) and model.layer2[0].conv1.stride == (1, 1)


def test_mobilenet_v2_has_torchvisions_module_names():
    state = mobilenet_v2().state_dict()
    expected = {
        "features.0.0.weight": (32, 3, 3, 3),
        "features.1.conv.0.0.weight": (32, 1, 3, 3),  # t=1: no expansion, depthwise first
        "features.1.conv.1.weight": (16, 32, 1, 1),
        "features.2.conv.0.0.weight": (96, 16, 1, 1),  # t=6: expand 16 -> 96
        "features.17.conv.2.weight": (320, 960, 1, 1),
        "features.18.0.weight": (1280, 320, 1, 1),
        "classifier.1.weight": (1000, 1280),
    }
    assert {k: tuple(state[k].shape) for k in expected} == expected
    assert "features.19.0.weight" not in state


def test_mobilenet_width_mult_rounds_channels_to_multiples_of_8():
    model = mobilenet_v2(width_mult=0.5, n_out=3)
    assert model.features[0][0].out_channels == 16 and model.features[18][0].out_channels == 1280
    assert all(m.out_channels % 8 == 0 for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups == 1)


@pytest.mark.parametrize("build", [xresnet18, xresnet50])
def test_xresnet_last_norm_of_every_block_starts_at_zero(build):
    blocks = [m for m in build(n_out=3).modules() if isinstance(m, ResBlock)]
    assert len(blocks) == (8 if build is xresnet18 else 16)
    for block in blocks:
        last = [m for m in block.convs if isinstance(m, ConvLayer)][-1]
        assert torch.count_nonzero(last[1].weight) == 0
        assert torch.count_nonzero(block.convs[0][1].weight) > 0


def test_xresnet_has_a_three_conv_stem_and_takes_mish_se_and_sa():
    model = build_model("xresnet18", n_out=2, act_cls="mish", se=True, sa=True)
    assert [m[0].kernel_size for m in model[:3]] == [(3, 3)] * 3
    assert any(isinstance(m, nn.Mish) for m in model.modules())
    assert sum(type(m).__name__ == "SelfAttention" for m in model.modules()) == 1
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 2)
    with pytest.raises(ValueError, match="'gelu'"):
        xresnet18(act_cls="gelu")


def test_an_unknown_arch_suggests_the_nearest_name():
    with pytest.raises(ValueError, match="did you mean 'resnet18'"):
        build_model("resnet19")
