"""A language model's loaders over a bigger real corpus: the Python documentation sources (Debian python3.11-doc),
read from text files. Skipped where that package is not installed."""

from pathlib import Path

import pytest

from lamina.text import TextDataLoaders

SOURCES = Path("/usr/share/doc/python3.11/html/_sources")


@pytest.mark.skipif(not SOURCES.is_dir(), reason="Debian python3.11-doc is not installed")
def test_lm_loaders_over_the_python_docs_sources_stream_every_file(tmp_path):
    folder = SOURCES / "tutorial"  # 16 files, ~60k words
    dls = TextDataLoaders.from_folder(folder, is_lm=True, valid_pct=0.2, extensions=[".txt"], bs=16, seq_len=64,
                                      seed=0, n_workers=2, cache_dir=tmp_path)  # fmt: skip
    n_files = len(list(folder.glob("*.rst.txt")))
    assert len(dls.train.dataset) + len(dls.valid.dataset) == n_files
    assert {"python", "xxmaj", "def", "list"} <= set(dls.text_vocab)
    x, y = dls.valid.one_batch()
    assert x.shape == (16, 64) and (x[:, 1:] == y[:, :-1]).all()
    assert len(list(tmp_path.glob("*.tokens"))) == 1  # tokens went through the on-disk cache
