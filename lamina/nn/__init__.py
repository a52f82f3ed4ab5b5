"""Model building blocks shared by the applications, and the model registry."""

from lamina.nn.registry import build_model, model_builder, model_names, register_model

__all__ = ["build_model", "model_builder", "model_names", "register_model"]
