"""lamina: a layered deep-learning library on PyTorch.

The floors are imported explicitly, each from its own package: ``lamina.core`` (typed tensors, transforms),
``lamina.data`` (datasets and loaders), ``lamina.optim`` (the composable optimizer), ``lamina.learner`` (the
training loop) and ``lamina.callbacks``. ``import lamina`` itself loads nothing heavy.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
