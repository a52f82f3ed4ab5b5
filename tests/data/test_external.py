"""Files of data-only packages: the install hint names the package pip knows."""

import importlib.util

import pytest

from lamina.data.external import package_file


def test_a_missing_skimage_is_installed_as_scikit_image(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "skimage" else real_find_spec(name))
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps scikit-image`") as info:
        package_file("skimage", "data/chelsea.png")
    assert "install --no-deps skimage" not in str(info.value)


def test_a_missing_package_whose_import_name_is_its_pip_name_keeps_it():
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps no_such_data_package`"):
        package_file("no_such_data_package", "data.csv")
