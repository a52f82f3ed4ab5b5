"""The tabular learner: it learns real data, predicts raw rows, and exports without pickle."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import torch
from diamonds_data import CATS, CONTS, Y, diamonds, valid_positions

from lamina.learner import CrossEntropyLossFlat, MSELossFlat, accuracy, rmse
from lamina.tabular import TabularDataLoaders, TabularLearner, tabular_learner


def _fit(df, y_names=Y, cat_names=CATS, epochs=3, **kwargs):
    torch.manual_seed(0)
    dls = TabularDataLoaders.from_df(df, cat_names=cat_names, cont_names=CONTS, y_names=y_names,
                                     valid_idx=valid_positions(len(df)), bs=64, seed=0)  # fmt: skip
    learn = tabular_learner(dls, **kwargs)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs)
    return learn


def test_a_short_fit_on_diamonds_beats_predicting_the_mean_by_a_wide_margin():
    df = diamonds()
    learn = _fit(df, metrics=[rmse])
    assert isinstance(learn.loss_func, MSELossFlat)
    valid = df[Y].iloc[valid_positions(len(df))]
    baseline = float(np.sqrt(((valid - df[Y].drop(index=valid.index).mean()) ** 2).mean()))
    with learn.no_bar():
        ours = learn.validate()[1]
    assert ours < 0.3 * baseline, (ours, baseline)


def test_predict_on_a_row_gives_the_same_value_as_batched_predictions():
    df = diamonds()
    learn = _fit(df, epochs=1)
    with learn.no_bar():
        value, raw, pred = learn.predict(df.iloc[7])
        batched = learn.get_preds(dl=learn.dls.test_dl(df.iloc[[7]]))[0]
    assert isinstance(learn, TabularLearner)
    assert float(value) == float(raw) == float(pred[0])
    assert torch.allclose(pred, batched[0])


def test_a_single_label_target_gets_cross_entropy_and_predict_returns_a_label():
    df = diamonds()
    learn = _fit(df, y_names="cut", cat_names=["color", "clarity"], metrics=[accuracy])
    assert isinstance(learn.loss_func, CrossEntropyLossFlat)
    with learn.no_bar():
        label, index, probs = learn.predict(df.iloc[0])
        acc = learn.validate()[1]
    vocab = learn.dls.vocab
    assert label == vocab[int(index)] and probs.shape == (len(vocab),)
    assert float(probs.sum()) == 1.0 or abs(float(probs.sum()) - 1.0) < 1e-5
    majority = df["cut"].value_counts(normalize=True).iloc[0]
    assert acc > majority + 0.05, (acc, majority)


def test_model_spec_is_json_safe_and_show_results_decodes_predictions(capsys):
    df = diamonds(600)
    learn = _fit(df, epochs=1)
    json.dumps(learn.model_spec)
    with learn.no_bar():
        shown = learn.show_results(max_n=4)
    assert list(shown.columns[-2:]) == [Y, f"{Y}_pred"] and len(shown) == 4
    assert set(shown["cut"]) <= set(df["cut"])


def test_an_export_predicts_bit_for_bit_the_same_in_a_fresh_interpreter(tmp_path):
    df = diamonds()
    df.loc[df.index[::11], "depth"] = np.nan  # exercise FillMissing's state and the depth_na column
    learn = _fit(df, epochs=1)
    rows = df.iloc[valid_positions(len(df))[:25]].drop(columns=[Y])
    rows.to_csv(tmp_path / "rows.csv", index=False)
    with learn.no_bar():
        expected = learn.get_preds(dl=learn.dls.test_dl(rows))[0]
        single = learn.predict(rows.iloc[3])[0]
    path = learn.export(tmp_path / "diamonds.lamina")
    script = textwrap.dedent(f"""
        import sys, json, torch, pandas as pd
        from lamina.learner import load_learner
        assert "lamina.tabular" not in sys.modules
        learn = load_learner({str(path)!r})
        rows = pd.read_csv({str(tmp_path / "rows.csv")!r})
        with learn.no_bar():
            preds = learn.get_preds(dl=learn.dls.test_dl(rows))[0]
            single = learn.predict(rows.iloc[3])[0]
        torch.save(preds, {str(tmp_path / "preds.pt")!r})
        print(json.dumps(float(single)))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    preds = torch.load(tmp_path / "preds.pt", weights_only=True)
    assert torch.equal(preds, expected)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == float(single)
