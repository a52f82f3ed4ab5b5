"""Subword tokenization (BPE or unigram) trained on the training texts with Hugging Face ``tokenizers``.

``tokenizers`` is an optional dependency (``pip install lamina[text]``), imported when a subword tokenizer is
trained or rebuilt. The trained model is kept as the library's own JSON (``Tokenizer.to_str()``), so the tokenizer
is written as data and rebuilt without pickling.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from lamina.core.serial import SerialError
from lamina.text.core import (
    BOS,
    EOS,
    PAD,
    SPECIAL_TOKENS,
    _rule_from_name,
    _rules,
    collapse_spaces,
    fix_html,
    rule_name,
)

__all__ = ["SUBWORD_MODELS", "SubwordTokenizer"]

SUBWORD_MODELS = ("bpe", "unigram")


def _tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError as e:
        raise ImportError(
            "SubwordTokenizer needs Hugging Face `tokenizers`: pip install 'lamina[text]' (or pip install tokenizers)"
        ) from e
    return tokenizers


class SubwordTokenizer:
    """A BPE or unigram subword tokenizer, trained on the training texts; tokens start with ``xxbos``.

    Text goes through ``pre_rules`` (plain ``str -> str`` functions, as for :class:`~lamina.text.core.WordTokenizer`),
    then the subword model (words are marked with a leading ``▁``, so :meth:`decode` restores spaces exactly).
    The special tokens (:data:`~lamina.text.core.SPECIAL_TOKENS`) are part of the model's vocabulary.

    Args:
        model: ``"bpe"`` (byte-pair encoding) or ``"unigram"`` (a unigram language model).
        vocab_size: the size of the subword vocabulary learned (special tokens included).
        min_frequency: for BPE, the fewest occurrences of a pair to merge it.
        pre_rules: functions ``str -> str`` (or registered names) run on each text first; ``[fix_html,
            collapse_spaces]`` when ``None``.

    Examples:
        >>> tok = SubwordTokenizer("bpe", vocab_size=60)
        >>> tok.train(["low lower lowest", "new newer newest"] * 20)
        >>> tokens = tok.tokenize("lower newest")
        >>> tokens[0], tok.decode(tokens)
        ('xxbos', 'lower newest')
    """

    def __init__(
        self,
        model: str = "bpe",
        vocab_size: int = 8000,
        min_frequency: int = 2,
        pre_rules: Sequence[Callable[[str], str] | str] | None = None,
    ) -> None:
        if model not in SUBWORD_MODELS:
            raise ValueError(f"model must be one of {SUBWORD_MODELS}, got {model!r}")
        if vocab_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}")
        if min_frequency < 1:
            raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
        self.model, self.vocab_size, self.min_frequency = model, vocab_size, min_frequency
        self.pre_rules: list[Callable[[str], str]] = _rules(pre_rules, (fix_html, collapse_spaces), "pre_rules")
        self._tok: Any = None

    @property
    def is_trained(self) -> bool:
        """Whether :meth:`train` (or :meth:`from_state`) gave the tokenizer a model."""
        return self._tok is not None

    def _prepared(self, text: str) -> str:
        if not isinstance(text, str):
            raise TypeError(f"SubwordTokenizer takes strings, got {type(text).__name__} {text!r}")
        for rule in self.pre_rules:
            text = rule(text)
        return text

    def train(self, texts: Iterable[str]) -> None:
        """Learn the subword vocabulary from ``texts`` (the training texts).

        Examples:
            >>> tok = SubwordTokenizer("unigram", vocab_size=40)
            >>> tok.train(["the cat sat on the mat"] * 30)
            >>> tok.is_trained, tok.tokenize("the mat")[0]
            (True, 'xxbos')
        """
        hf = _tokenizers()
        specials = list(SPECIAL_TOKENS)
        if self.model == "bpe":
            tok = hf.Tokenizer(hf.models.BPE(unk_token=SPECIAL_TOKENS[0]))
            trainer = hf.trainers.BpeTrainer(
                vocab_size=self.vocab_size, min_frequency=self.min_frequency, special_tokens=specials,
                show_progress=False,
            )  # fmt: skip
        else:
            tok = hf.Tokenizer(hf.models.Unigram())
            trainer = hf.trainers.UnigramTrainer(
                vocab_size=self.vocab_size, special_tokens=specials, unk_token=SPECIAL_TOKENS[0], show_progress=False
            )
        tok.pre_tokenizer = hf.pre_tokenizers.Metaspace()
        tok.decoder = hf.decoders.Metaspace()
        tok.train_from_iterator((self._prepared(t) for t in texts), trainer=trainer)
        self._tok = tok

    def _model(self) -> Any:
        if self._tok is None:
            raise ValueError(f"this {self.model} tokenizer is not trained: call tokenizer.train(training_texts) first")
        return self._tok

    def _pieces(self) -> list[str]:
        """The vocabulary by id (kept, so tokens are read from ids: an unknown piece becomes ``xxunk``)."""
        model = self._model()
        if getattr(self, "_pieces_of", None) is not model:
            self._pieces_by_id, self._pieces_of = self.vocab, model
        return self._pieces_by_id

    def tokenize(self, text: str) -> list[str]:
        """The subword tokens of one text, ``xxbos`` first; a piece the model does not know is ``xxunk``."""
        pieces = self._pieces()
        return [BOS, *(pieces[i] for i in self._model().encode(self._prepared(text)).ids)]

    def tokenize_batch(self, texts: Sequence[str]) -> list[list[str]]:
        """The subword tokens of each text (encoded in one call of the library)."""
        pieces = self._pieces()
        encodings = self._model().encode_batch([self._prepared(t) for t in texts])
        return [[BOS, *(pieces[i] for i in e.ids)] for e in encodings]

    def decode(self, tokens: Sequence[str]) -> str:
        """The text of subword tokens (``xxbos``, ``xxeos`` and ``xxpad`` dropped)."""
        kept = [t for t in tokens if t not in (BOS, EOS, PAD)]
        return str(self._model().decoder.decode(kept))

    @property
    def vocab(self) -> list[str]:
        """The subword vocabulary by id."""
        v = self._model().get_vocab()
        return sorted(v, key=v.__getitem__)

    def state(self) -> dict[str, Any]:
        """The tokenizer as JSON-safe data: settings, pre-rules by name and the model as the library's JSON."""
        return {
            "kind": "subword",
            "model": self.model,
            "vocab_size": self.vocab_size,
            "min_frequency": self.min_frequency,
            "pre_rules": [rule_name(r) for r in self.pre_rules],
            "tokenizer_json": self._model().to_str(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SubwordTokenizer:
        """Rebuild a tokenizer written by :meth:`state` (no pickle: the model is the library's JSON)."""
        if not isinstance(state, dict) or state.get("kind") != "subword":
            raise SerialError(f"not a subword tokenizer's state: {str(state)[:200]}")
        tok = cls(
            state["model"], state["vocab_size"], state.get("min_frequency", 2),
            [_rule_from_name(k) for k in state.get("pre_rules", [])],
        )  # fmt: skip
        tok._tok = _tokenizers().Tokenizer.from_str(state["tokenizer_json"])
        return tok

    def cache_key(self) -> str:
        """A hash of the settings, the pre-rules and the trained model (a different model never reads a cache)."""
        from lamina.text.core import _fingerprint

        parts = [self.model, *(_fingerprint(r) for r in self.pre_rules), self._model().to_str()]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def __getstate__(self) -> dict[str, Any]:
        # worker processes get the model as its JSON (the library's own objects are rebuilt from it)
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_pieces")}
        return {**state, "_tok": self._tok.to_str() if self._tok is not None else None}

    def __setstate__(self, d: dict[str, Any]) -> None:
        tok_json = d.pop("_tok")
        self.__dict__.update(d)
        self._tok = _tokenizers().Tokenizer.from_str(tok_json) if tok_json is not None else None

    def __repr__(self) -> str:
        trained = "trained" if self.is_trained else "untrained"
        return f"SubwordTokenizer({self.model!r}, vocab_size={self.vocab_size}, {trained})"
