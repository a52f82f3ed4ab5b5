"""Vision models: ResNet and MobileNetV2 with torchvision's weight layout, XResNet, and pretrained weights.

Importing this package registers ``resnet18/34/50``, ``xresnet18/34/50/101`` and ``mobilenet_v2`` in
:mod:`lamina.nn.registry`, and the families ``timm/<name>`` and ``torchvision/<name>`` (built only when those
libraries are installed).
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
from lamina.vision.models.interop import (
    LIBRARIES,
    ArchInfo,
    arch_info,
    import_library,
    library_arch_name,
    timm_model,
    torchvision_model,
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
    "LIBRARIES",
    "MOBILENET_V2_SETTINGS",
    "PRETRAINED_WEIGHTS",
    "ArchInfo",
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
    "arch_info",
    "body_splitter",
    "create_body",
    "create_classifier",
    "create_head",
    "fetch_weights",
    "find_cut",
    "imagenet_classes",
    "import_library",
    "library_arch_name",
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
    "timm_model",
    "torchvision_model",
    "unet_splitter",
    "weights_path",
    "xresnet18",
    "xresnet34",
    "xresnet50",
    "xresnet101",
]
