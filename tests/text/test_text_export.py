"""Text learners export without pickle (tokenizer rules, vocabularies, registered model as data) and a fresh
process that loads the file predicts exactly what the trained learner predicts."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lamina
from lamina.learner import ExportError, load_learner, read_export
from lamina.text import TextDataLoaders
from lamina.text.learner import language_model_learner, text_classifier_learner
from lamina.text.models import AWD_LSTM
from tests.text.tweets_data import tweets

TINY = {"emb_sz": 16, "n_hid": 24, "n_layers": 2}

TEXTS = ["I love my new self-driving car!", "Worst flight ever @united", "the weather is weather", ""]

ENV = {**os.environ, "PYTHONPATH": str(Path(lamina.__file__).resolve().parents[1]), "HF_HUB_OFFLINE": "1"}
LOADER = """
import json, sys, torch
torch.set_num_threads(int(sys.argv[3]))
from lamina.learner import load_learner
learn = load_learner(sys.argv[1])
out = [learn.predict(t) for t in json.loads(sys.argv[2])]
print(json.dumps({"labels": [o[0] for o in out], "probs": [o[2].tolist() for o in out]}))
"""


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    torch.manual_seed(0)
    dls = TextDataLoaders.from_df(tweets(200), label_col="sentiment", valid_col="is_valid", bs=16, seed=0)
    learn = text_classifier_learner(
        dls, AWD_LSTM, config=TINY, seq_len=12, path=tmp_path_factory.mktemp("clf"), show_progress=False, logger=None
    )
    learn.fit(1, 1e-2)
    return learn


def header(path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n])


def test_a_fresh_process_loads_the_classifier_and_predicts_the_same_labels_and_probabilities(classifier, tmp_path):
    path = classifier.export(tmp_path / "tweets.lamina")
    expected = [classifier.predict(t) for t in TEXTS]
    out = subprocess.run([sys.executable, "-c", LOADER, str(path), json.dumps(TEXTS), str(torch.get_num_threads())],
                         capture_output=True, text=True, cwd=tmp_path, env=ENV)  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["labels"] == [e[0] for e in expected]
    assert torch.allclose(torch.tensor(got["probs"]), torch.stack([e[2] for e in expected]), atol=1e-6)


def test_the_export_is_safetensors_with_the_tokenizer_rules_and_vocabularies_as_json(classifier, tmp_path):
    path = classifier.export(tmp_path / "tweets.lamina")
    spec, _ = read_export(path)
    data = spec["data"]
    assert spec["app"] == "text" and spec["model"]["name"] == "awd_lstm_classifier"
    assert data["kind"] == "classifier" and data["vocab"] == ["negative", "neutral", "positive"]
    assert data["text_vocab"] == classifier.text_vocab and data["pad_idx"] == 1
    assert json.loads(json.dumps(data["tokenizer"])) == classifier.tokenizer.state()
    assert all(v["dtype"] in ("F32", "I64") for k, v in header(path).items() if k != "__metadata__")
    assert b"pickle" not in path.read_bytes()[:64] and not path.read_bytes().startswith(b"\x80")


def test_the_language_model_exports_and_writes_the_same_continuation_after_loading(tmp_path):
    torch.manual_seed(0)
    dls = TextDataLoaders.from_df(tweets(150), is_lm=True, valid_col="is_valid", bs=8, seq_len=16, seed=0)
    learn = language_model_learner(dls, AWD_LSTM, config=TINY, path=tmp_path, show_progress=False, logger=None)
    learn.fit(1, 1e-2)
    loaded = load_learner(learn.export("lm.lamina"))
    assert loaded.predict("Driverless cars are", n_words=5, seed=3) == learn.predict("Driverless cars are", 5,
                                                                                      seed=3)  # fmt: skip
    assert loaded.text_vocab == learn.text_vocab


def test_a_vocabulary_that_does_not_fit_the_model_is_refused(classifier, tmp_path):
    from lamina.text.export import rebuild_text

    spec, _tensors = read_export(classifier.export(tmp_path / "tweets.lamina"))
    data = {**spec["data"], "text_vocab": spec["data"]["text_vocab"][:-3]}
    with pytest.raises(ExportError, match="token vocabulary has"):
        rebuild_text(data, {}, classifier.model, None)
    with pytest.raises(ExportError, match="do not fit the model"):
        rebuild_text({**spec["data"], "vocab": ["a", "b"]}, {}, classifier.model, None)
