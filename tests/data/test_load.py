"""The DataLoader batches by slicing or item by item, reproducibly across worker counts, and fails clearly."""

import functools
import random

import numpy as np
import pytest
import torch

from lamina.core.tensors import TensorCategory, TensorImage, TensorImageBW
from lamina.core.transform import Transform
from lamina.data.core import Datasets
from lamina.data.load import CollateError, DataLoader, DataLoaders, TensorSource, collate
from lamina.data.transforms import Categorize, IntToFloatTensor, Normalize
from tests.conftest import assert_png
from tests.data.mnist_items import PickImage, PickLabel, RandomShift, mnist_items


def mnist_dsets(mnist, n_train=256, n_valid=64, augment=False):
    items, splits = mnist_items(mnist, n_train, n_valid)
    x_tfms = [PickImage(), *([RandomShift()] if augment else [])]
    return Datasets(items, [x_tfms, [PickLabel(), Categorize()]], splits=splits)


def test_mnist_end_to_end_batches_are_typed_normalized_and_labelled(mnist):
    dls = mnist_dsets(mnist).dataloaders(bs=32, after_batch=[IntToFloatTensor(), Normalize()], seed=0)
    xb, yb = dls.one_batch()
    assert type(xb) is TensorImageBW and xb.shape == (32, 1, 28, 28) and xb.dtype == torch.float32
    assert type(yb) is TensorCategory and yb.shape == (32,)
    # stats were learned from training batches: a normalized training epoch is centred and scaled
    allx = torch.cat([b[0].as_plain() for b in dls.train])
    assert abs(allx.mean().item()) < 0.05 and abs(allx.std().item() - 1) < 0.05
    assert len(dls.train) == 256 // 32 and len(dls.valid) == 2
    assert dls.vocab == [str(d) for d in range(10)]


def test_same_seed_gives_identical_batches_with_zero_and_two_workers(mnist):
    ds = mnist_dsets(mnist, augment=True).train
    dl0 = DataLoader(ds, bs=32, shuffle=True, seed=7, num_workers=0)
    dl2 = DataLoader(ds, bs=32, shuffle=True, seed=7, num_workers=2)
    for epoch in range(2):
        b0, b2 = list(dl0), list(dl2)
        assert len(b0) == len(b2) == 8
        for (x0, y0), (x2, y2) in zip(b0, b2):
            assert torch.equal(x0, x2) and torch.equal(y0, y2), f"epoch {epoch} differs"
    assert type(b2[0][0]) is TensorImageBW  # types survive the trip from worker processes


def test_same_seed_trains_to_the_same_weights_with_zero_and_two_workers(mnist):
    from torch import nn

    from lamina.learner import Learner

    def train(num_workers):
        dss = mnist_dsets(mnist, n_train=128, n_valid=32, augment=True)
        dls = dss.dataloaders(bs=32, seed=3, num_workers=num_workers, after_batch=[IntToFloatTensor()])
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(784, 10))  # dropout draws from torch's RNG
        learn = Learner(dls, model, lr=1e-2, show_progress=False, logger=None)
        learn.fit(2)
        return [p.detach().clone() for p in model.parameters()]

    w0, w2 = train(0), train(2)
    assert all(torch.equal(a, b) for a, b in zip(w0, w2))


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"), [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")]
)
def test_the_default_device_is_cuda_then_mps_then_the_cpu(monkeypatch, cuda, mps, expected):
    from lamina.data import default_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert default_device() == torch.device(expected)
    assert default_device("cpu") == torch.device("cpu")  # told otherwise


def test_dataloaders_pick_the_accelerator_unless_told_or_already_placed(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    x, y = torch.randn(20, 2), torch.randint(0, 2, (20,))

    def loaders(device=None):
        return DataLoader((x, y), bs=4, device=device), DataLoader((x, y), bs=4, device=device)

    assert DataLoaders(*loaders()).device == torch.device("cuda")
    assert all(dl.device == torch.device("cuda") for dl in DataLoaders(*loaders()).loaders)
    assert DataLoaders(*loaders(), device="cpu").device == torch.device("cpu")
    assert DataLoaders(*loaders("cpu")).device == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert DataLoaders(*loaders()).device is None  # on the CPU nothing moves


def test_random_item_transforms_really_run_and_depend_on_the_seed(mnist):
    ds = mnist_dsets(mnist, augment=True).train
    a = next(iter(DataLoader(ds, bs=64, seed=1)))[0]
    b = next(iter(DataLoader(ds, bs=64, seed=2)))[0]
    plain = next(iter(DataLoader(mnist_dsets(mnist).train, bs=64)))[0]
    assert not torch.equal(a, b) and not torch.equal(a, plain)


def test_seeded_loading_leaves_the_global_random_state_alone(mnist):
    dl = DataLoader(mnist_dsets(mnist, augment=True).train, bs=64, seed=3)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    list(dl)
    assert torch.equal(torch.rand(3), expected), "torch's generator gets its exact state back"

    def draws_after_loading(seed: int) -> tuple[float, float]:
        random.seed(seed)
        np.random.seed(seed)
        list(dl)
        return random.random(), float(np.random.rand())

    # random and numpy go on from a state derived from their own: reproducible from the program's seed, and not the
    # batch's seed (which would repeat the same numbers after every batch)
    assert draws_after_loading(0) == draws_after_loading(0) != draws_after_loading(1)


def test_shuffling_covers_every_item_once_and_changes_between_epochs():
    x = torch.arange(100)
    dl = DataLoader((x,), bs=16, shuffle=True, seed=0)
    e1 = torch.cat([b[0] for b in dl])
    e2 = torch.cat([b[0] for b in dl])
    assert sorted(e1.tolist()) == list(range(100)) and not torch.equal(e1, e2)


def test_the_tensor_fast_path_slices_and_matches_item_by_item_loading():
    x, y = torch.randn(50, 4), torch.arange(50)
    fast = DataLoader((x, y), bs=8, shuffle=True, seed=0)
    assert fast.fast
    slow = DataLoader([(x[i], y[i]) for i in range(50)], bs=8, shuffle=True, seed=0)
    assert not slow.fast
    for (xf, yf), (xs, ys) in zip(fast, slow):
        assert torch.equal(xf, xs) and torch.equal(yf, ys)


def test_drop_last_and_batch_count():
    dl = DataLoader(torch.arange(10), bs=4, drop_last=True)
    assert len(dl) == 2 and [len(b[0]) for b in dl] == [4, 4]


def test_collating_images_of_different_sizes_names_the_items_and_suggests_resize():
    items = [(TensorImage(torch.zeros(3, 28, 28)), 0), (TensorImage(torch.zeros(3, 30, 28)), 1)]
    with pytest.raises(CollateError, match=r"dataset items 0 and 1.*\(3, 30, 28\).*Resize"):
        next(iter(DataLoader(items, bs=2)))


def test_padding_collate_pads_variable_length_items():
    items = [(torch.tensor([1, 2, 3]),), (torch.tensor([4]),)]
    (b,) = next(iter(DataLoader(items, bs=2, collate_fn=functools.partial(collate, pad_value=0))))
    assert b.tolist() == [[1, 2, 3], [4, 0, 0]]


def test_an_empty_dataset_and_a_bad_batch_size_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"empty dataset.*split"):
        DataLoader([], bs=4)
    with pytest.raises(ValueError, match="bs must be >= 1, got 0"):
        DataLoader([1, 2], bs=0)


def test_a_transform_that_raises_in_a_worker_names_the_item_and_step(mnist):
    class Fussy(Transform):
        def encodes(self, x: TensorImageBW):
            raise ValueError("this image is too dark: filter such items out")

    ds = mnist_dsets(mnist).train
    dl = DataLoader(ds, bs=4, num_workers=2, after_item=[Fussy()])
    with pytest.raises(Exception, match=r"(?s)after_item, item 0.*Fussy.*too dark"):
        next(iter(dl))


def test_after_batch_runs_on_the_device_and_new_keeps_shared_state(mnist):
    norm = Normalize()
    dls = mnist_dsets(mnist).dataloaders(bs=32, after_batch=[IntToFloatTensor(), norm], device="cpu")
    assert dls.valid.after_batch.fs[-1] is norm  # validation shares the state learned on training
    dl2 = dls.train.new(bs=8)
    assert dl2.bs == 8 and dl2.after_batch.fs[-1] is norm and len(dl2.one_batch()[0]) == 8
    assert dls.one_batch()[0].device.type == "cpu"


def test_decode_batch_undoes_batch_transforms(mnist):
    dls = mnist_dsets(mnist).dataloaders(bs=16, after_batch=[IntToFloatTensor(), Normalize()])
    b = dls.valid.one_batch()
    items = dls.valid.decode_batch(b, max_n=3)
    assert len(items) == 3
    x0, _ = items[0]
    assert x0.dtype == torch.uint8 and torch.equal(x0, torch.from_numpy(mnist["x_valid"][0])[None])


def test_show_batch_writes_a_png_with_titles(mnist, tmp_path):
    dls = mnist_dsets(mnist).dataloaders(bs=16, after_batch=[IntToFloatTensor(), Normalize()])
    fig = dls.valid.show_batch(max_n=6)
    titles = [ax.get_title() for ax in fig.axes]
    va = np.linspace(0, 999, 64).astype(int)[:6]
    assert titles == [str(int(d)) for d in mnist["y_valid"][va]]
    path = tmp_path / "batch.png"
    fig.savefig(path)
    assert_png(path, 5000)


def test_test_dl_uses_input_transforms_only(mnist):
    dls = mnist_dsets(mnist).dataloaders(bs=16, after_batch=[IntToFloatTensor(), Normalize()])
    items = [(mnist["x_valid"][i], -1) for i in range(5)]
    (xb,) = dls.test_dl(items).one_batch()
    assert xb.shape == (5, 1, 28, 28) and xb.dtype == torch.float32


def test_dataloaders_need_a_validation_loader_for_valid():
    dls = DataLoaders(DataLoader(torch.arange(4), bs=2))
    with pytest.raises(IndexError, match="no validation loader"):
        _ = dls.valid


def test_pin_memory_path_goes_through_torch_loader():
    x = torch.arange(12.0).view(6, 2)
    dl = DataLoader(np.arange(6).tolist(), bs=3, pin_memory=False, num_workers=1)
    assert [b.tolist() for b in dl] == [[0, 1, 2], [3, 4, 5]]
    assert x.shape == (6, 2)


def test_a_datasets_subclass_own_getitem_decides_what_the_loader_batches():
    class Offset(Datasets):
        def __getitem__(self, i):
            x, y = super().__getitem__(i)
            return x, y + 1000

    ds = Offset(list(range(4)), [[lambda v: v], [lambda v: v]])
    assert next(iter(DataLoader(ds, bs=4)))[1].tolist() == [1000, 1001, 1002, 1003]


def test_datasets_follow_pipelines_replaced_after_creation_and_keep_each_pipelines_splits():
    from lamina.core.transform import Pipeline
    from lamina.data.core import TfmdLists

    ds = Datasets(list(range(3)), [[lambda v: v]])
    ds.tls[0].tfms = Pipeline([lambda v: v * 100])
    assert ds[1] == ds[np.int64(1)] == (100,)
    items = list(range(6))
    own_splits = Datasets(
        tls=[
            TfmdLists(items, [lambda v: v], splits=[[0, 1], [2, 3]]),
            TfmdLists(items, [lambda v: -v], splits=[[4, 5], [0, 1]]),
        ]
    )
    assert list(own_splits.train) == [(0, -4), (1, -5)]


def test_an_empty_validation_set_gets_no_loader_but_an_empty_set_before_a_full_one_is_refused():
    x = torch.arange(12.0)
    full, empty = TensorSource(x, x), TensorSource(x[:0], x[:0])
    dls = DataLoaders.from_dsets(full, empty, bs=4, device="cpu")
    assert len(dls) == 1 and len(dls.train) == 3
    with pytest.raises(IndexError, match="no validation loader"):
        dls.valid  # noqa: B018
    with pytest.raises(ValueError, match="dataset 1 is empty but later ones are not"):
        DataLoaders.from_dsets(full, empty, full, bs=4)


def batches_of(dl, n=None):
    out = []
    for b in dl:
        out.append([t.clone() for t in b])
        if n is not None and len(out) == n:
            break
    return out


@pytest.mark.parametrize("seed", [None, 3], ids=["order from torch's RNG", "loader seed"])
def test_a_loader_state_taken_mid_epoch_resumes_the_rest_of_that_epoch_then_the_same_epochs(mnist, seed):
    items, splits = mnist_items(mnist, 160, 10)
    dsets = Datasets(items, [[PickImage(), RandomShift()], [PickLabel(), Categorize()]], splits=splits)

    def loader():
        torch.manual_seed(0)
        return DataLoader(dsets.train, bs=32, shuffle=True, seed=seed, after_batch=[IntToFloatTensor()])

    dl = loader()
    expected = batches_of(dl) + batches_of(dl) + batches_of(dl)  # three epochs of five batches
    dl = loader()
    batches_of(dl)
    seen = batches_of(dl, 2)
    state, rng = dl.state_dict(), torch.get_rng_state()
    assert state["epoch"] == 1 and state["batch"] == 2
    fresh = loader()  # a new process: a new loader, the saved generator state
    fresh.load_state_dict(state)
    torch.set_rng_state(rng)
    assert fresh.start_batch == 2
    got = seen + batches_of(fresh) + batches_of(fresh)
    assert len(got) == len(expected[5:]) == 10
    assert all(torch.equal(a, b) for g, e in zip(got, expected[5:]) for a, b in zip(g, e))
    assert fresh.state_dict() == {"epoch": 3, "batch": 0, "order_seed": None}


def test_a_loader_state_that_does_not_fit_is_refused_with_the_fix():
    dl = DataLoader(torch.arange(10.0), bs=4)
    with pytest.raises(ValueError, match=r"batch in 0\.\.3 .* same bs"):
        dl.load_state_dict({"epoch": 0, "batch": 7, "order_seed": None})
