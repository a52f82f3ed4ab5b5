"""Promises of lamina.vision.models.body: cutting a classifier before its pooling, adapting the first conv to any
number of input channels, and the pooling + linear head."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

from lamina.vision.models.body import (
    adapt_first_conv,
    body_splitter,
    create_body,
    create_classifier,
    create_head,
    find_cut,
    num_features_model,
)


class TinyResNet(nn.Module):
    """A torchvision-style ResNet: named children, flatten in ``forward`` (not a child), pooling then a linear layer."""

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, n_classes)

    def features(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer2(self.layer1(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


def sequential_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 4),
    )


def test_create_body_cuts_a_resnet_like_model_before_its_pooling() -> None:
    torch.manual_seed(0)
    net = TinyResNet().eval()
    body = create_body(net).eval()
    assert [type(m).__name__ for m in body][-1] == "Sequential" and len(body) == 6  # conv1 .. layer2
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(body(x), net.features(x))


def test_create_body_cuts_a_sequential_before_adaptive_avg_pool() -> None:
    net = sequential_net()
    assert find_cut(net) == 4
    body = create_body(net)
    assert len(body) == 4 and not any(isinstance(m, nn.AdaptiveAvgPool2d) for m in body.modules())
    assert body(torch.zeros(1, 3, 32, 32)).shape == (1, 16, 8, 8)


def test_create_body_follows_an_int_or_function_cut() -> None:
    net = sequential_net()
    assert len(create_body(net, cut=2)) == 2
    assert len(create_body(net, cut=-3)) == 4
    assert create_body(net, cut=lambda m: m[:1])[0] is net[0]


def test_create_body_without_any_pooling_says_to_pass_cut() -> None:
    fully_conv = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
    with pytest.raises(ValueError, match="pass cut="):
        create_body(fully_conv)
    with pytest.raises(ValueError, match=r"cut=0 keeps none"):
        create_body(sequential_net(), cut=0)


def test_create_body_keeps_the_first_conv_weights_for_three_channels() -> None:
    net = sequential_net()
    weight = net[0].weight
    assert create_body(net, n_in=3)[0].weight is weight


@pytest.mark.parametrize("n_in", [1, 2])
def test_fewer_channels_sum_the_filters_so_a_repeated_input_gives_the_rgb_output(n_in: int) -> None:
    torch.manual_seed(0)
    net = sequential_net()
    rgb_body = copy.deepcopy(create_body(net))
    body = create_body(net, n_in=n_in)
    x = torch.randn(2, n_in, 16, 16)
    tiled = x[:, [i % n_in for i in range(3)]]
    assert body[0].in_channels == n_in
    torch.testing.assert_close(body(x), rgb_body(tiled), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n_in", [4, 7])
def test_more_channels_share_out_the_filters_so_repeated_rgb_gives_the_rgb_output(n_in: int) -> None:
    torch.manual_seed(0)
    net = sequential_net()
    rgb_body = copy.deepcopy(create_body(net))
    body = create_body(net, n_in=n_in)
    x = torch.randn(2, 3, 16, 16)
    repeated = x[:, [j % 3 for j in range(n_in)]]
    torch.testing.assert_close(body(repeated), rgb_body(x), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(body(torch.cat([x, torch.randn(2, n_in - 3, 16, 16)], 1)), rgb_body(x))


def test_adapting_a_conv_nested_in_a_stage_replaces_it_in_that_stage() -> None:
    net = TinyResNet()
    adapt_first_conv(net, 1)
    assert net.conv1.in_channels == 1 and net.conv1.bias is None and net.conv1.stride == (2, 2)
    assert net(torch.zeros(1, 1, 32, 32)).shape == (1, 10)
    with pytest.raises(ValueError, match="n_in must be >= 1"):
        adapt_first_conv(net, 0)


def test_num_features_model_reads_the_output_channels() -> None:
    assert num_features_model(create_body(TinyResNet())) == 16
    assert num_features_model(create_body(sequential_net(), n_in=5)) == 16


def test_create_head_concat_pool_doubles_the_features() -> None:
    head = create_head(16, 3, lin_ftrs=[8]).eval()
    assert head(torch.randn(4, 16, 5, 5)).shape == (4, 3)
    linears = [m for m in head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(32, 8), (8, 3)]
    plain = create_head(16, 3, lin_ftrs=[8], concat_pool=False)
    assert next(m for m in plain if isinstance(m, nn.Linear)).in_features == 16


def test_create_head_concat_pool_gives_max_then_mean_of_each_channel() -> None:
    head = create_head(2, 1, lin_ftrs=[], ps=0.0, first_bn=False)
    x = torch.arange(8.0).view(1, 2, 2, 2)
    pooled = head[1](head[0](x))
    assert pooled.tolist() == [[3.0, 7.0, 1.5, 5.5]]


def test_create_head_options_shape_the_layers() -> None:
    head = create_head(8, 2, lin_ftrs=[6, 4], ps=0.4, first_bn=False, bn_final=True, y_range=(0.0, 5.0))
    kinds = [type(m).__name__ for m in head]
    assert kinds[:3] == ["AdaptiveConcatPool2d", "Flatten", "Dropout"]  # no batch norm before the first linear
    assert kinds[-2:] == ["BatchNorm1d", "SigmoidRange"]
    assert [m.p for m in head if isinstance(m, nn.Dropout)] == [0.2, 0.2, 0.4]
    out = head.eval()(torch.randn(3, 8, 4, 4))
    assert out.shape == (3, 2) and bool(((out > 0) & (out < 5)).all())
    lin_first = create_head(8, 2, lin_ftrs=[4], lin_first=True)
    assert [type(m).__name__ for m in lin_first][2:] == [
        "BatchNorm1d", "Dropout", "Linear", "ReLU", "BatchNorm1d", "Dropout", "Linear"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="one dropout per linear layer"):
        create_head(8, 2, lin_ftrs=[4], ps=[0.1])


def test_body_splitter_gives_body_then_head_parameters() -> None:
    clf = create_classifier(sequential_net(), 5, lin_ftrs=[4])
    body_params, head_params = body_splitter(clf)
    assert {id(p) for p in body_params} == {id(p) for p in clf[0].parameters()}
    assert {id(p) for p in head_params} == {id(p) for p in clf[1].parameters()}
    assert clf.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 5)
    with pytest.raises(ValueError, match=r"nn.Sequential\(body, head\)"):
        body_splitter(sequential_net())
