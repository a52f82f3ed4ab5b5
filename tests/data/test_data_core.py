"""TfmdLists and Datasets transform lazily, split, decode, and name the item and the step when data is bad."""

import pytest
import torch

from lamina.core.tensors import TensorCategory, TensorImageBW
from lamina.core.transform import Transform, TransformError
from lamina.data.core import Datasets, TfmdLists
from lamina.data.transforms import Categorize


def test_tfmdlists_learn_state_from_the_training_split_only():
    tl = TfmdLists(["cat", "dog", "bird"], [Categorize()], splits=[[0, 1], [2]])
    assert tl.vocab == ["cat", "dog"]
    assert int(tl.train[1]) == 1 and len(tl.valid) == 1


def test_tfmdlists_are_lazy_and_index_by_int_slice_and_list():
    calls = []

    class Count(Transform):
        def encodes(self, x: int):
            calls.append(x)
            return x * 10

    tl = TfmdLists(list(range(10)), [Count()])
    assert calls == []
    assert tl[3] == 30 and tl[1:3] == [10, 20] and tl[[9, 0]] == [90, 0]
    assert tl.new([7])[0] == 70


def test_datasets_give_tuples_of_inputs_and_targets(mnist):
    from tests.data.mnist_items import PickImage, PickLabel, mnist_items

    items, splits = mnist_items(mnist, 40, 10)
    ds = Datasets(items, [[PickImage()], [PickLabel(), Categorize()]], splits=splits)
    x, y = ds.valid[0]
    assert type(x) is TensorImageBW and x.shape == (1, 28, 28)
    assert type(y) is TensorCategory
    assert ds.vocab == [str(d) for d in range(10)]
    assert ds.valid.decode((x, y))[1] == str(int(mnist["y_valid"][0]))
    assert ds.n_inp == 1 and len(ds.train) == 40


def test_a_label_the_vocab_has_never_seen_names_the_item_the_step_and_the_fix():
    ds = Datasets(["cat", "dog", "zebra"], [[lambda s: s], [Categorize()]], splits=[[0, 1], [2]])
    with pytest.raises(TransformError) as err:
        ds.valid[0]
    msg = str(err.value)
    assert "target of item 0" in msg and "'zebra'" in msg and "Categorize" in msg and "add_na=True" in msg


def test_unseen_labels_map_to_na_when_asked():
    ds = Datasets(["cat", "dog", "zebra"], [[lambda s: s], [Categorize(add_na=True)]], splits=[[0, 1], [2]])
    assert int(ds.valid[0][1]) == 0 and ds.vocab == ["#na#", "cat", "dog"]


def test_an_index_out_of_range_says_how_many_items_there_are():
    tl = TfmdLists(["a", "b"], [])
    with pytest.raises(IndexError, match="index 5 is out of range for 2 items"):
        tl[5]


def test_a_split_index_out_of_range_blames_the_splitter():
    with pytest.raises(IndexError, match="splitter"):
        TfmdLists(["a"], [], splits=[[0], [3]])


def test_a_plain_tensor_item_keeps_a_typed_result():
    tl = TfmdLists([torch.zeros(2)], [lambda t: TensorImageBW(t)])
    assert type(tl[0]) is TensorImageBW
