"""One import for notebooks: ``from lamina.tabular.all import *`` gives the tabular application and every floor below.

The namespace is the public names (each package's ``__all__``) of ``lamina.core``, ``lamina.data``,
``lamina.optim``, ``lamina.learner``, ``lamina.callbacks``, ``lamina.nn``, ``lamina.datasets`` and
``lamina.tabular``, in that order: where two floors export the same name, the later one's object is the one you get.
Library code never imports from here; it names the module a name comes from.

Examples:
    >>> from lamina.tabular import all as tabular_all
    >>> tabular_all.tabular_learner.__module__, tabular_all.Learner.__module__
    ('lamina.tabular.learner', 'lamina.learner.learner')
"""

from types import ModuleType
from typing import Any

from lamina import callbacks, core, data, datasets, learner, nn, optim, tabular

FLOORS: tuple[ModuleType, ...] = (core, data, optim, learner, callbacks, nn, datasets, tabular)
_names: dict[str, Any] = {name: getattr(floor, name) for floor in FLOORS for name in floor.__all__}
globals().update(_names)
__all__ = sorted(_names)
