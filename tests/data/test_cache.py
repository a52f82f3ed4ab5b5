"""Loaders keep the items of deterministic pipelines after one full epoch and slice them afterwards; they refuse to
cache anything that changes from epoch to epoch."""

import pytest
import torch

import lamina.data.cache
from lamina.core.tensors import TensorCategory, TensorImageBW
from lamina.core.transform import Transform
from lamina.data.core import Datasets
from lamina.data.load import DataLoader
from lamina.data.transforms import Categorize, IntToFloatTensor
from tests.data.mnist_items import PickImage, PickLabel, RandomShift, mnist_items


class CountingPick(PickImage):
    """PickImage that counts its calls (deterministic: the count is of work, not of results)."""

    calls = 0

    def encodes(self, x: tuple):
        type(self).calls += 1
        return super().encodes(x)


def dsets(mnist, x_tfms=(), n_train=200, n_valid=50):
    items, splits = mnist_items(mnist, n_train, n_valid)
    return Datasets(items, [[CountingPick(), *x_tfms], [PickLabel(), Categorize()]], splits=splits)


def epochs(dl, n):
    return [[(xb.clone(), yb.clone()) for xb, yb in dl] for _ in range(n)]


def same(a, b):
    return len(a) == len(b) and all(torch.equal(x, u) and torch.equal(y, v) for (x, y), (u, v) in zip(a, b))


def test_deterministic_items_are_computed_once_and_batches_match_an_uncached_loader(mnist):
    ds = dsets(mnist).train
    cached = DataLoader(ds, bs=32, shuffle=True, drop_last=True, seed=4)
    plain = DataLoader(ds, bs=32, shuffle=True, drop_last=True, seed=4, cache=False)
    CountingPick.calls = 0
    got = epochs(cached, 3)
    # one epoch of 6 full batches (192 items), then the 8 items drop_last left out, then nothing more
    assert CountingPick.calls == 200 and cached.cached and cached.fast
    assert all(same(g, e) for g, e in zip(got, epochs(plain, 3)))
    assert not same(got[1], got[2])  # still reshuffled every epoch
    xb, yb = got[2][0]
    assert type(xb) is TensorImageBW and type(yb) is TensorCategory and xb.dtype == torch.uint8
    # every item is reachable from the cache, in item order
    full = cached._cached.get_batch(slice(0, 200))
    assert torch.equal(full[0][57], ds[57][0]) and int(full[1][57]) == int(ds[57][1])


def test_the_cache_holds_items_before_after_batch_so_batch_transforms_still_run(mnist):
    class AddOneInPlace(Transform):
        order = 100  # after IntToFloatTensor

        def encodes(self, x: TensorImageBW):
            return x.add_(1)  # in place: the cached copy must not see it

    dl = DataLoader(dsets(mnist).valid, bs=25, after_batch=[IntToFloatTensor(), AddOneInPlace()])
    first, second, third = epochs(dl, 3)
    assert dl.cached and same(first, second) and same(second, third)
    assert float(first[0][0].min()) >= 1.0


def test_random_or_unknown_transforms_are_never_cached_automatically(mnist):
    augmented = dsets(mnist, [RandomShift()])
    dl = DataLoader(augmented.train, bs=50, seed=0)
    a, b = epochs(dl, 2)
    assert not dl.cached and not same(a, b)  # the augmentation draws anew each epoch
    # the same pipeline on the validation split (where RandomShift does not run) is cached
    valid = DataLoader(augmented.valid, bs=50)
    epochs(valid, 1)
    assert valid.cached
    # a plain function as an item transform: nothing is known about it
    fn = DataLoader(dsets(mnist).train, bs=50, after_item=[lambda x: x])
    epochs(fn, 1)
    assert not fn.cached


def test_cache_true_refuses_a_random_transform_and_names_it(mnist):
    dl = DataLoader(dsets(mnist, [RandomShift()]).train, bs=50, cache=True)
    with pytest.raises(ValueError, match=r"RandomShift.*random on this split.*cache=False"):
        next(iter(dl))


def test_a_partial_epoch_caches_nothing(mnist):
    dl = DataLoader(dsets(mnist).train, bs=50)
    for i, _ in enumerate(dl):
        if i == 1:
            break
    assert not dl.cached
    epochs(dl, 1)
    assert dl.cached


def test_items_over_the_memory_budget_are_not_cached(mnist, monkeypatch):
    monkeypatch.setattr(lamina.data.load, "AUTO_CACHE_BYTES", 200 * 28 * 28 - 1)  # one byte short of 200 images
    dl = DataLoader(dsets(mnist).train, bs=50)
    epochs(dl, 2)
    assert not dl.cached
    forced = DataLoader(dsets(mnist).train, bs=50, cache=True)  # cache=True has no budget
    epochs(forced, 1)
    assert forced.cached


def test_the_cache_fills_from_worker_processes(mnist):
    ds = dsets(mnist).train
    dl = DataLoader(ds, bs=50, shuffle=True, seed=1, num_workers=2)
    with_workers = epochs(dl, 2)
    assert dl.cached
    assert same(with_workers[1], epochs(DataLoader(ds, bs=50, shuffle=True, seed=1, cache=False), 2)[1])


def test_test_dl_and_new_loaders_over_other_items_do_not_reuse_the_cache(mnist):
    from lamina.data.load import DataLoaders

    ds = dsets(mnist)
    dls = ds.dataloaders(bs=50, seed=0)
    epochs(dls.valid, 1)
    assert dls.valid.cached and dls.valid.new(bs=10).cached  # same items: shared
    items, _ = mnist_items(mnist, 10, 0)
    tdl = DataLoaders(dls.train, dls.valid).test_dl(items)
    assert [len(b[0]) for b in tdl] == [10]
    assert not tdl.cached and not dls.valid.new(dataset=ds.train).cached
