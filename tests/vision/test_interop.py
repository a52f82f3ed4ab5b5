"""timm and torchvision networks become vision learners by name, constructor or module, cut and normalized as their
own metadata says, trained from random weights or a local weights file, never downloaded; they export and reload.

The tests that build timm/torchvision networks skip, saying why, where those libraries do not import (the main suite
runs on a CPU torch they were not built for); CI runs them in a second environment (see ``.ci/run``).
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from lamina.data.transforms import Normalize, imagenet_stats
from lamina.learner import load_learner, read_export
from lamina.nn.registry import build_model, model_families, register_model_family
from lamina.vision import ImageDataLoaders, Resize, SegmentationDataLoaders
from lamina.vision.learner import unet_learner, vision_learner
from lamina.vision.models import ArchInfo, arch_info, import_library, library_arch_name


def _import_failure(module: str) -> str | None:
    try:
        importlib.import_module(module)
    except Exception as e:  # a torchvision built for another torch fails with RuntimeError, not ImportError
        return f"{module} does not import beside torch {torch.__version__} ({type(e).__name__}: {str(e)[:120]})"
    return None


MISSING = _import_failure("timm") or _import_failure("torchvision")
needs_libraries = pytest.mark.skipif(MISSING is not None, reason=f"skipped: {MISSING}; see .ci/run's interop stage")


# ---------------------------------------------------------------- without the libraries


def test_the_timm_and_torchvision_families_are_registered_with_the_vision_models():
    assert {"timm", "torchvision"} <= set(model_families())


def test_a_family_builds_the_name_after_its_slash_and_refuses_a_bare_prefix():
    @register_model_family("test_interop_family")
    def family(name: str, **kwargs) -> nn.Module:
        return {"lin": nn.Linear}[name](**kwargs)

    assert build_model("test_interop_family/lin", in_features=3, out_features=2).in_features == 3
    with pytest.raises(ValueError, match="names the 'test_interop_family' family but no model"):
        build_model("test_interop_family/")
    with pytest.raises(ValueError, match="without '/'"):
        register_model_family("a/b")


def test_an_unknown_family_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"families: .*timm/<model>.*torchvision/<model>"):
        build_model("keras/resnet50")


def test_networks_of_neither_library_have_no_metadata_and_no_library_name():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1))
    assert arch_info(net) == ArchInfo() and arch_info(net).stats is None
    assert library_arch_name(net) is None and library_arch_name(nn.Linear) is None


@pytest.mark.skipif(MISSING is None, reason="timm and torchvision import here")
def test_a_timm_name_without_timm_says_how_to_install_it():
    with pytest.raises(ImportError, match=r"pip install (timm|torchvision)"):
        build_model("timm/resnet18" if _import_failure("timm") else "torchvision/resnet18")


# ---------------------------------------------------------------- with the libraries


@pytest.fixture(scope="module")
def digits(mnist, tmp_path_factory):
    """48 real digits (ones and eights) as PNGs, opened as RGB and resized to 32 x 32; masks (pixels > 127) beside."""
    root = tmp_path_factory.mktemp("interop")
    files = []
    for digit in (1, 8):
        for k, i in enumerate(np.flatnonzero(mnist["y_train"] == digit)[:24]):
            Image.fromarray(mnist["x_train"][i]).save(root / f"{digit}_{k}.png")
            Image.fromarray((mnist["x_train"][i] > 127).astype(np.uint8)).save(root / f"{digit}_{k}_mask.png")
            files.append(root / f"{digit}_{k}.png")
    return root, files


def classifier_dls(digits):
    root, files = digits
    return ImageDataLoaders.from_path_func(root, files, lambda p: "one" if p.name[0] == "1" else "eight",
                                           seed=0, bs=16, item_tfms=Resize(32))  # fmt: skip


def quiet(learn):
    learn.logger = lambda line: None
    learn.show_progress = False
    return learn


def normalize_of(learn) -> Normalize | None:
    return next((t for t in learn.dls.train.after_batch.fs if isinstance(t, Normalize)), None)


@needs_libraries
def test_timm_resnet18_by_name_is_cut_where_its_feature_info_and_global_pool_say():
    import timm

    net = timm.create_model("resnet18")
    info = arch_info(net, "timm/resnet18")
    names = [n for n, _ in net.named_children()]
    assert info.cut == names.index("global_pool") == names.index(net.feature_info[-1]["module"]) + 1 == 8
    assert info.mean == tuple(net.pretrained_cfg["mean"]) and info.std == tuple(net.pretrained_cfg["std"])
    effnet = timm.create_model("efficientnet_b0")
    assert [n for n, _ in effnet.named_children()][arch_info(effnet).cut] == "global_pool"  # conv_head stays in


@needs_libraries
def test_a_timm_learner_from_random_weights_learns_its_batches(digits):
    dls = classifier_dls(digits)
    torch.manual_seed(0)
    learn = quiet(vision_learner(dls, "timm/resnet18", pretrained=False, lin_ftrs=[16]))
    body = learn.model[0]
    assert len(body) == 8 and type(body[-1]).__name__ == "Sequential"  # conv1 ... layer4, no global_pool, no fc
    assert normalize_of(learn) is None, "random weights have no statistics to normalize to"
    assert learn.model_spec["kwargs"]["arch"] == "timm/resnet18" and learn.model_spec["kwargs"]["cut"] == 8
    learn.fit(4, lr=3e-3)
    losses = learn.recorder.losses
    assert np.mean(losses[-3:]) < np.mean(losses[:3]), losses


@needs_libraries
def test_torchvision_mobilenet_v2_is_cut_by_probing_and_normalized_as_its_weights_transforms_say(digits, tmp_path):
    from torchvision import models

    dls = classifier_dls(digits)
    expected = models.get_model_weights("mobilenet_v2").DEFAULT.transforms()
    net = models.mobilenet_v2()
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(net.state_dict(), path)
    learn = quiet(vision_learner(dls, "torchvision/mobilenet_v2", weights=path, lin_ftrs=[16]))
    assert arch_info(net, "torchvision/mobilenet_v2").stats == (list(expected.mean), list(expected.std))
    norm = normalize_of(learn)
    assert norm is not None and norm.mean == pytest.approx(list(expected.mean))
    assert norm.std == pytest.approx(list(expected.std))
    body = learn.model[0]
    assert len(body) == 1 and torch.equal(body[0][1].conv[0][0].weight, net.features[1].conv[0][0].weight)
    convs = [m for m in body.modules() if isinstance(m, nn.Conv2d)]
    assert convs and not any(m.weight.requires_grad for m in convs), "loaded weights freeze the body"
    learn.fit(1, lr=1e-3)
    assert np.isfinite(learn.recorder.values[-1][2])


@needs_libraries
def test_a_timm_network_passed_as_a_module_brings_its_own_statistics_and_a_torchvision_constructor_its_name(digits):
    import timm
    from torchvision import models

    dls = classifier_dls(digits)
    net = timm.create_model("resnet18", pretrained_cfg_overlay={"mean": (0.5, 0.4, 0.3), "std": (0.2, 0.2, 0.2)})
    learn = quiet(vision_learner(dls, net, lin_ftrs=[16]))
    assert normalize_of(learn).mean == pytest.approx([0.5, 0.4, 0.3])
    assert learn.model[0][0] is net.conv1, "the module is used as given, with its weights"
    assert learn.model_spec["kwargs"]["arch"] == "timm/resnet18"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a library constructor has a name: no "will not export" warning
        tv = vision_learner(classifier_dls(digits), models.resnet18, pretrained=False, lin_ftrs=[16])
    assert tv.model_spec["kwargs"]["arch"] == "torchvision/resnet18"


@needs_libraries
def test_pretrained_timm_or_torchvision_weights_are_never_downloaded(digits):
    dls = classifier_dls(digits)
    for name in ("timm/resnet18", "torchvision/resnet18"):
        with pytest.raises(ValueError, match="never downloads"):
            vision_learner(dls, name)
    with pytest.raises(ValueError, match="pretrained= is refused"):
        build_model("timm/resnet18", pretrained=True)
    with pytest.raises(ValueError, match="weights= is refused"):
        build_model("torchvision/resnet18", weights="DEFAULT")
    with pytest.raises(ValueError, match="timm has no model 'resnet19'"):
        build_model("timm/resnet19")


@needs_libraries
def test_a_timm_learner_with_local_weights_exports_and_reloads_to_the_same_predictions(digits, tmp_path):
    import timm
    from safetensors.torch import save_file

    dls = classifier_dls(digits)
    net = timm.create_model("resnet18")
    save_file(net.state_dict(), str(tmp_path / "resnet18.safetensors"))
    torch.manual_seed(0)
    learn = quiet(vision_learner(dls, "timm/resnet18", weights=tmp_path / "resnet18.safetensors", lin_ftrs=[16]))
    assert torch.equal(learn.model[0][0].weight, net.conv1.weight)
    assert normalize_of(learn).mean == pytest.approx(list(imagenet_stats[0]))
    learn.fit(1, lr=1e-3)
    spec, _ = read_export(learn.export(tmp_path / "digits.lamina"))
    assert spec["model"]["kwargs"]["arch"] == "timm/resnet18" and spec["data"]["stats"]["mean"] == [0.485, 0.456, 0.406]
    loaded = load_learner(tmp_path / "digits.lamina")
    files = [str(f) for f in digits[1][::7]]
    expected = learn.get_preds(dl=learn.dls.test_dl(files))[0]
    assert torch.allclose(loaded.get_preds(dl=loaded.dls.test_dl(files))[0], expected, atol=1e-6)


@needs_libraries
def test_a_unet_on_a_timm_encoder_segments_at_the_input_size(digits):
    root, files = digits
    dls = SegmentationDataLoaders.from_label_func(root, [f.name for f in files],
                                                  lambda p: p.with_name(f"{p.stem}_mask.png"),
                                                  codes=["background", "digit"], bs=8, seed=0,
                                                  item_tfms=Resize(32))  # fmt: skip
    torch.manual_seed(0)
    learn = quiet(unet_learner(dls, "timm/resnet18", pretrained=False))
    assert learn.model_spec["kwargs"]["cut"] == 8
    xb = dls.one_batch()[0]
    assert learn.model.eval()(xb).shape == (xb.shape[0], 2, 32, 32)
    learn.fit(3, lr=1e-2)
    losses = learn.recorder.losses
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses


def test_import_library_names_the_known_libraries():
    with pytest.raises(ValueError, match=r"expected one of \['timm', 'torchvision'\]"):
        import_library("keras")
