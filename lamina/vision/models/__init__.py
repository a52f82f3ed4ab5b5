"""Vision models: ResNet and MobileNetV2 with torchvision's weight layout, XResNet, and pretrained weights.

Importing this package registers ``resnet18/34/50``, ``xresnet18/34/50/101`` and ``mobilenet_v2`` in
:mod:`lamina.nn.registry`.
"""

from lamina.vision.models.body import (
    adapt_first_conv,
    body_splitter,
    create_body,
    create_classifier,
    create_head,
    find_cut,
    num_features_model,
)
from lamina.vision.models.mobilenet import (
    MOBILENET_V2_SETTINGS,
    InvertedResidual,
    MobileNetV2,
    make_divisible,
    mobilenet_v2,
)
from lamina.vision.models.pretrained import (
    PRETRAINED_WEIGHTS,
    WeightsFile,
    fetch_weights,
    imagenet_classes,
    load_pretrained,
    load_state_dict_file,
    weights_path,
)
from lamina.vision.models.resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
from lamina.vision.models.simple import simple_cnn
from lamina.vision.models.unet import DynamicUnet, UnetBlock, skip_indices, unet_splitter
from lamina.vision.models.xresnet import ACTIVATIONS, XResNet, xresnet18, xresnet34, xresnet50, xresnet101

__all__ = [
    "ACTIVATIONS",
    "MOBILENET_V2_SETTINGS",
    "PRETRAINED_WEIGHTS",
    "BasicBlock",
    "Bottleneck",
    "DynamicUnet",
    "InvertedResidual",
    "MobileNetV2",
    "ResNet",
    "UnetBlock",
    "WeightsFile",
    "XResNet",
    "adapt_first_conv",
    "body_splitter",
    "create_body",
    "create_classifier",
    "create_head",
    "fetch_weights",
    "find_cut",
    "imagenet_classes",
    "load_pretrained",
    "load_state_dict_file",
    "make_divisible",
    "mobilenet_v2",
    "num_features_model",
    "resnet18",
    "resnet34",
    "resnet50",
    "simple_cnn",
    "skip_indices",
    "unet_splitter",
    "weights_path",
    "xresnet18",
    "xresnet34",
    "xresnet50",
    "xresnet101",
]
