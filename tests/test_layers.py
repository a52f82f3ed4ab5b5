"""Each floor imports only the floors below it, and `import lamina` stays light."""

import json
import subprocess
import sys

import pytest

# floor -> lamina packages it may load (besides itself)
ALLOWED = {
    "lamina.core": set(),
    "lamina.data": {"lamina.core"},
    "lamina.optim": set(),
    "lamina.nn": set(),
    # the Learner's floor holds the schedules, progress bar and precision its own methods use
    "lamina.learner": {"lamina.core", "lamina.data", "lamina.optim", "lamina.nn"},
    "lamina.callbacks": {"lamina.core", "lamina.data", "lamina.optim", "lamina.learner", "lamina.nn"},
    "lamina.tabular": {"lamina.core", "lamina.data", "lamina.optim", "lamina.learner", "lamina.callbacks", "lamina.nn"},
    "lamina.collab": {"lamina.core", "lamina.data", "lamina.optim", "lamina.learner", "lamina.callbacks", "lamina.nn"},
    "lamina.vision": {"lamina.core", "lamina.data", "lamina.optim", "lamina.learner", "lamina.callbacks", "lamina.nn"},
    "lamina.text": {"lamina.core", "lamina.data", "lamina.optim", "lamina.learner", "lamina.callbacks", "lamina.nn"},
}


def loaded_packages(module: str) -> set[str]:
    code = (
        f"import json, sys; import {module}; "
        "print(json.dumps(sorted({'.'.join(m.split('.')[:2]) for m in sys.modules if m.startswith('lamina.')})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out))


@pytest.mark.parametrize("floor", sorted(ALLOWED))
def test_a_floor_loads_only_the_floors_below_it(floor):
    try:
        __import__(floor)
    except ImportError:
        pytest.skip(f"{floor} does not exist yet")
    extra = loaded_packages(floor) - ALLOWED[floor] - {floor}
    assert not extra, f"{floor} imports {sorted(extra)}, which are not below it"


def test_import_lamina_loads_no_heavy_optional_dependency():
    heavy = ("matplotlib", "tensorboard", "transformers", "onnx")
    code = f"import sys, lamina; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
