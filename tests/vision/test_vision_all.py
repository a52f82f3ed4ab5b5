"""`from lamina.vision.all import *`: one import for notebooks, built from the floors' `__all__` lists."""

from lamina.vision import all as vision_all
from tests.all_namespace import check_namespace, shadowed


def test_the_namespace_is_every_floors_public_names_and_nothing_private():
    check_namespace(vision_all, "vision")


def test_the_names_a_vision_notebook_needs_are_there():
    assert {
        "ImageDataLoaders",
        "vision_learner",
        "unet_learner",
        "Resize",
        "accuracy",
        "Learner",
        "DataBlock",
        "load_learner",
        "solar_cells",
        "EarlyStoppingCallback",
    } <= set(vision_all.__all__)


def test_only_the_intended_names_are_shadowed_by_a_later_floor():
    assert shadowed(vision_all) == {}


def test_a_star_import_gives_the_public_names_and_no_module_of_lamina():
    import json
    import subprocess
    import sys

    code = (
        "import json; from lamina.vision.all import *; "
        "print(json.dumps(sorted(k for k in dir() if not k.startswith('__') and k != 'json')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == sorted(vision_all.__all__)
