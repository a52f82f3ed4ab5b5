"""One import for notebooks: ``from lamina.vision.all import *`` gives the vision application and every floor below.

The namespace is the public names (each package's ``__all__``) of ``lamina.core``, ``lamina.data``,
``lamina.optim``, ``lamina.learner``, ``lamina.callbacks``, ``lamina.nn``, ``lamina.datasets`` and
``lamina.vision``, in that order: where two floors export the same name, the later one's object is the one you get.
Library code never imports from here; it names the module a name comes from.

Examples:
    >>> from lamina.vision import all as vision_all
    >>> vision_all.vision_learner.__module__, vision_all.Learner.__module__
    ('lamina.vision.learner', 'lamina.learner.learner')
"""

from types import ModuleType
from typing import Any

from lamina import callbacks, core, data, datasets, learner, nn, optim, vision

FLOORS: tuple[ModuleType, ...] = (core, data, optim, learner, callbacks, nn, datasets, vision)
_names: dict[str, Any] = {name: getattr(floor, name) for floor in FLOORS for name in floor.__all__}
globals().update(_names)
__all__ = sorted(_names)
