"""Model building blocks shared by the applications, and the model registry."""

from lamina.nn.layers import (
    AdaptiveConcatPool2d,
    ConvLayer,
    Flatten,
    PixelShuffle_ICNR,
    ResBlock,
    SelfAttention,
    SigmoidRange,
    SqueezeExcite,
    emb_sz_rule,
    icnr_init,
    sigmoid_range,
)
from lamina.nn.registry import (
    build_model,
    model_builder,
    model_families,
    model_names,
    register_model,
    register_model_family,
    registered_name,
)

__all__ = [
    "AdaptiveConcatPool2d",
    "ConvLayer",
    "Flatten",
    "PixelShuffle_ICNR",
    "ResBlock",
    "SelfAttention",
    "SigmoidRange",
    "SqueezeExcite",
    "build_model",
    "emb_sz_rule",
    "icnr_init",
    "model_builder",
    "model_families",
    "model_names",
    "register_model",
    "register_model_family",
    "registered_name",
    "sigmoid_range",
]
