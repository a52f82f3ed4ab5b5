"""Tabular loaders: batches are slices of processed tensors; decoding, test data and bad input."""

import numpy as np
import pandas as pd
import pytest
import torch
from diamonds_data import CATS, CONTS, Y, diamonds, valid_positions

from lamina.tabular import TabularDataLoaders, TabularDataset, TabularError, TabularPandas


def _dls(df: pd.DataFrame, **kwargs) -> TabularDataLoaders:
    return TabularDataLoaders.from_df(
        df, cat_names=CATS, cont_names=CONTS, y_names=Y, valid_idx=valid_positions(len(df)), bs=64, seed=0, **kwargs
    )


def test_batches_are_slices_of_the_processed_tensors_never_single_rows(monkeypatch):
    dls = _dls(diamonds())
    assert dls.train.fast and dls.valid.fast and dls.n_inp == 2
    calls = []
    ds = dls.train.dataset
    real_get_batch = TabularDataset.get_batch

    def spy(self, idx):
        calls.append(idx)
        return real_get_batch(self, idx)

    def no_items(self, i):
        raise AssertionError("a row was fetched one by one")

    monkeypatch.setattr(TabularDataset, "get_batch", spy)
    monkeypatch.setattr(TabularDataset, "__getitem__", no_items)
    cats, conts, ys = next(iter(dls.train))
    assert cats.dtype == torch.int64 and conts.dtype == torch.float32 and ys.dtype == torch.float32
    assert cats.shape == (64, 3) and conts.shape == (64, 6) and ys.shape == (64,)
    assert len(calls) == 1 and isinstance(calls[0], torch.Tensor) and len(calls[0]) == 64
    assert torch.equal(cats, ds.cats[calls[0]])


def test_show_batch_decodes_categories_to_strings_and_values_to_the_original_scale(capsys):
    df = diamonds()
    dls = _dls(df, shuffle=False)
    shown = dls.show_batch(max_n=5)
    printed = capsys.readouterr().out
    assert all(label in printed for label in shown["clarity"])
    first = df.drop(index=valid_positions(len(df))).reset_index(drop=True).iloc[:5]
    assert shown["cut"].tolist() == first["cut"].tolist()
    assert shown["clarity"].tolist() == first["clarity"].tolist()
    assert shown["carat"].to_numpy() == pytest.approx(first["carat"].to_numpy(), rel=1e-5)
    assert shown[Y].to_numpy() == pytest.approx(first[Y].to_numpy(), rel=1e-6)


def test_test_dl_processes_new_rows_exactly_like_the_validation_rows():
    df = diamonds()
    dls = _dls(df)
    valid_rows = df.iloc[valid_positions(len(df))]
    test = dls.test_dl(valid_rows)
    assert test.fast and test.dataset.ys is None
    assert torch.equal(test.dataset.cats, dls.valid.dataset.cats)
    assert torch.equal(test.dataset.conts, dls.valid.dataset.conts)
    labelled = dls.test_dl(valid_rows, with_labels=True)
    assert torch.equal(labelled.dataset.ys, dls.valid.dataset.ys)


def test_a_missing_categorical_column_is_named_with_the_columns_available():
    with pytest.raises(TabularError, match=r"cat_names names column 'colour'.*its columns are \['carat', 'cut'"):
        TabularDataLoaders.from_df(diamonds(200), cat_names=["cut", "colour"], cont_names=CONTS, y_names=Y)


def test_a_target_with_missing_values_names_the_column_and_count_and_suggests_dropping_rows():
    df = diamonds(200)
    df.loc[[3, 7, 11], Y] = np.nan
    with pytest.raises(TabularError, match=r"target column 'price' has 3 missing values.*dropna\(subset=\['price'\]\)"):
        TabularDataLoaders.from_df(df, cat_names=CATS, cont_names=CONTS, y_names=Y)


def test_a_text_column_given_as_continuous_is_named_and_sent_to_cat_names():
    with pytest.raises(TabularError, match=r"continuous column 'clarity' holds text.*move it to cat_names"):
        TabularDataLoaders.from_df(diamonds(200), cat_names=["cut"], cont_names=["carat", "clarity"], y_names=Y)


def test_an_empty_split_says_which_split_and_why():
    df = diamonds(200)
    with pytest.raises(TabularError, match=r"the validation split is empty \(0 of 200 rows\)"):
        TabularDataLoaders.from_df(df, cat_names=CATS, cont_names=CONTS, y_names=Y, valid_idx=[])
    with pytest.raises(TabularError, match=r"the training split is empty"):
        TabularDataLoaders.from_df(df, cat_names=CATS, cont_names=CONTS, y_names=Y, valid_idx=range(200))


def test_from_csv_reads_the_file_and_gives_the_same_tensors(tmp_path):
    df = diamonds(300)
    df.to_csv(tmp_path / "d.csv", index=False)
    kwargs = dict(cat_names=CATS, cont_names=CONTS, y_names=Y, valid_idx=range(250, 300))
    a, b = TabularDataLoaders.from_df(df, **kwargs), TabularDataLoaders.from_csv(tmp_path / "d.csv", **kwargs)
    assert torch.equal(a.valid.dataset.cats, b.valid.dataset.cats)
    assert torch.allclose(a.valid.dataset.conts, b.valid.dataset.conts)


# ---------------------------------------------------------------- infinities, repeated names, blocks and procs

INF_ROWS = [17, 4_200, 9_999, 12_345, 19_998]


def test_inf_in_a_continuous_column_names_the_column_and_the_row_count():
    df = diamonds(20_000)
    df.loc[INF_ROWS[:3], "carat"] = np.inf
    df.loc[INF_ROWS[3:], "carat"] = -np.inf
    with pytest.raises(TabularError, match=r"continuous column 'carat' holds \+inf or -inf in 5 of 20000 rows.*"
                       r"\[17, 4200, 9999, 12345, 19998\].*inf_as_missing=True"):  # fmt: skip
        _dls(df)


def test_inf_in_the_target_names_the_column_and_the_row_count():
    df = diamonds(20_000)
    df.loc[INF_ROWS, Y] = np.inf
    with pytest.raises(TabularError, match=r"target column 'price' holds \+inf or -inf in 5 of 20000 rows"):
        _dls(df)


def test_inf_in_new_rows_is_refused_too_so_predictions_cannot_silently_be_nan():
    df = diamonds(2_000)
    dls = _dls(df)
    new = df.iloc[:10].copy()
    new.loc[3, "depth"] = -np.inf
    with pytest.raises(TabularError, match=r"continuous column 'depth' holds \+inf or -inf in 1 of 10 rows"):
        dls.test_dl(new)


def test_with_inf_as_missing_infinities_are_filled_and_flagged_like_missing_values():
    df = diamonds(20_000)
    df.loc[INF_ROWS, "carat"] = [np.inf, -np.inf, np.inf, np.inf, -np.inf]
    to = TabularPandas(df, cat_names=CATS, cont_names=CONTS, y_names=Y, splits=(range(16_000), range(16_000, 20_000)),
                       inf_as_missing=True)  # fmt: skip
    assert torch.isfinite(to.conts).all()
    flags = to.cats[:, to.processor.cat_names_.index("carat_na")]
    assert torch.nonzero(flags == 2).flatten().tolist() == INF_ROWS  # code 2 is True, code 1 False
    assert np.isfinite(list(to.processor.procs[2].means_.values())).all()


def test_a_repeated_column_name_says_which_name_is_repeated():
    df = diamonds(200)
    twice = pd.concat([df, df[["depth"]]], axis=1)
    with pytest.raises(TabularError, match=r"the DataFrame has 2 columns named 'depth' \(used in cont_names\)"):
        _dls(twice)
    with pytest.raises(TabularError, match=r"cont_names names column 'carat' twice"):
        TabularDataLoaders.from_df(df, cat_names=CATS, cont_names=["carat", "carat"], y_names=Y)


def test_blocks_from_lamina_data_choose_the_tabular_target():
    from lamina.data import CategoryBlock, MultiCategoryBlock, RegressionBlock

    df = diamonds(500)
    kw = dict(cat_names=["color", "clarity"], cont_names=CONTS, splits=(range(400), range(400, 500)))
    assert TabularPandas(df, y_names=Y, y_block=RegressionBlock(), **kw).processor.target.kind == "regression"
    to = TabularPandas(df, y_names="cut", y_block=CategoryBlock(), **kw)
    assert to.processor.target.kind == "single" and to.train.vocab == sorted(df["cut"].unique())
    assert TabularPandas(df, y_names="cut", y_block=CategoryBlock, **kw).processor.target.kind == "single"
    both = df.assign(big=df["carat"] > 1, ideal=df["cut"] == "Ideal")
    multi = TabularPandas(both, y_names=["big", "ideal"], y_block=MultiCategoryBlock(), **kw)
    assert multi.processor.target.kind == "multi" and multi.ys.shape == (500, 2)
    with pytest.raises(TabularError, match=r"RegressionBlock\(n_out=2\) but y_names has 1 columns"):
        TabularPandas(df, y_names=Y, y_block=RegressionBlock(n_out=2), **kw)


def test_tabular_pandas_builds_its_dataloaders_with_bs():
    df = diamonds(1_000)
    to = TabularPandas(df, cat_names=CATS, cont_names=CONTS, y_names=Y, splits=(range(800), range(800, 1_000)))
    dls = to.dataloaders(bs=32, val_bs=100)
    cats, conts, ys = dls.train.one_batch()
    assert isinstance(dls, TabularDataLoaders) and (cats.shape, conts.shape, ys.shape) == ((32, 3), (32, 6), (32,))
    assert len(dls.valid) == 2 and torch.equal(dls.valid.dataset.ys, to.valid.ys)


def test_a_non_tabular_transform_in_procs_says_to_use_the_tabular_proc():
    from lamina import data, tabular

    df = diamonds(200)
    for wrong in (data.Normalize, data.Normalize()):
        with pytest.raises(TabularError, match=r"procs\[2\] is lamina\.data\..*Normalize, which does not process a "
                           r"table.*lamina\.tabular\.Normalize instead of lamina\.data\.Normalize"):  # fmt: skip
            TabularPandas(df, [tabular.Categorify, tabular.FillMissing, wrong], CATS, CONTS, Y)
