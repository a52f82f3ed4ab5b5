"""Shared checks of the one-import modules (`lamina.<app>.all`), used by tests/<app>/test_all.py."""

from types import ModuleType


def floor_names(module: ModuleType) -> dict[str, object]:
    """Every public name of every floor the module is built from, the later floor's object winning."""
    return {name: getattr(floor, name) for floor in module.FLOORS for name in floor.__all__}


def shadowed(module: ModuleType) -> dict[str, tuple[str, str]]:
    """Names that two floors export as different objects: ``{name: (first floor, floor that wins)}``."""
    seen: dict[str, tuple[str, object]] = {}
    found: dict[str, tuple[str, str]] = {}
    for floor in module.FLOORS:
        for name in floor.__all__:
            obj = getattr(floor, name)
            if name in seen and seen[name][1] is not obj:
                found[name] = (seen[name][0], floor.__name__)
            seen[name] = (floor.__name__, obj)
    return found


def check_namespace(module: ModuleType, app: str) -> None:
    """The module exports exactly the floors' public names, each bound to the winning floor's object."""
    names = floor_names(module)
    assert sorted(module.__all__) == sorted(names)
    assert all(getattr(module, n) is obj for n, obj in names.items())
    assert not [n for n in module.__all__ if n.startswith("_")]
    assert module.FLOORS[-1].__name__ == f"lamina.{app}"
