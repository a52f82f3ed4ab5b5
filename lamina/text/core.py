"""Text as tokens: special tokens, a rule-based word tokenizer, decoding, and tokenizing a corpus in parallel.

A :class:`WordTokenizer` runs three stages on each text:

1. its **pre-rules**, plain functions ``str -> str`` (unescape HTML, mark runs of a repeated character);
2. :func:`split_words`, a regular expression that cuts words, numbers, contractions, URLs and punctuation apart;
3. its **post-rules**, plain functions ``list[str] -> list[str]`` (mark repeated words, capitals, lower-case
   everything, put :data:`BOS` first).

Both rule lists are ordinary Python lists a user can change. Rules are registered by name (:func:`register_rule`),
so a tokenizer is written as data (``tokenizer.state()``, JSON) and rebuilt from it (:func:`tokenizer_from_state`)
without pickling: a file can only name rules the program registered.

:func:`decode` undoes the markers (capitals, repetitions) and joins the tokens into readable text.

:func:`tokenize_texts` tokenizes a whole corpus: in ``n_workers`` processes, one chunk of texts at a time (memory is
bounded by a few chunks, not by the corpus), and cached on disk under a key made of the texts and the tokenizer's
rules (the same call again reads the cache; changing a rule, or a text, tokenizes again).
"""

from __future__ import annotations

import hashlib
import html
import inspect
import json
import re
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from lamina.core.serial import SerialError
from lamina.core.tensors import TensorText
from lamina.core.utils import atomic_write

__all__ = [
    "BOS",
    "DEFAULT_POST_RULES",
    "DEFAULT_PRE_RULES",
    "EOS",
    "PAD",
    "REP",
    "SPECIAL_TOKENS",
    "TK_MAJ",
    "TK_UP",
    "UNK",
    "WREP",
    "TensorText",
    "TextTokenizer",
    "TokenizedTexts",
    "WordTokenizer",
    "add_bos",
    "collapse_spaces",
    "corpus_key",
    "decode",
    "fix_html",
    "join_tokens",
    "lowercase",
    "mark_all_caps",
    "mark_capitalized",
    "mark_char_repetition",
    "mark_word_repetition",
    "register_rule",
    "registered_rules",
    "rule_name",
    "split_words",
    "tokenize_texts",
    "tokenizer_from_state",
]

UNK, PAD, BOS, EOS = "xxunk", "xxpad", "xxbos", "xxeos"
TK_MAJ, TK_UP, REP, WREP = "xxmaj", "xxup", "xxrep", "xxwrep"
SPECIAL_TOKENS: tuple[str, ...] = (UNK, PAD, BOS, EOS, TK_MAJ, TK_UP, REP, WREP)
"""The special tokens, in the order every vocabulary starts with: ``vocab.index(PAD) == 1``."""

CACHE_FORMAT = 1  # bump when the cache files' layout or split_words changes: old caches then miss

_RULES: dict[str, Callable[..., Any]] = {}


# ---------------------------------------------------------------- the rule registry


def register_rule(func: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Register a tokenizer rule under ``name`` (its function name by default), so tokenizers using it can be
    written as data and rebuilt. Use as ``@register_rule`` or ``register_rule(f, name="...")``.

    Args:
        func: the rule: ``str -> str`` for a pre-rule, ``list[str] -> list[str]`` for a post-rule.
        name: the name it is stored under; registering another function under a taken name is an error.

    Examples:
        >>> @register_rule
        ... def strip_hashes(text: str) -> str:
        ...     "Drop '#' before hashtags."
        ...     return text.replace("#", "")
        >>> WordTokenizer(pre_rules=[strip_hashes]).tokenize("#cars rule")
        ['xxbos', 'cars', 'rule']
    """

    def add(f: Callable[..., Any]) -> Callable[..., Any]:
        key = name or getattr(f, "__name__", None)
        if not key or key == "<lambda>":
            raise ValueError(f"register_rule needs a name for {f!r}: pass name='...'")
        old = _RULES.get(key)
        if old is not None and old is not f and _fingerprint(old) != _fingerprint(f):
            raise ValueError(f"a different rule is already registered as {key!r}: pick another name")
        _RULES[key] = f
        return f

    return add(func) if func is not None else add


def registered_rules() -> dict[str, Callable[..., Any]]:
    """The registered tokenizer rules by name.

    Examples:
        >>> {"fix_html", "mark_all_caps", "add_bos"} <= set(registered_rules())
        True
    """
    return dict(_RULES)


def rule_name(func: Callable[..., Any]) -> str:
    """The name ``func`` is registered under; raises ``SerialError`` for an unregistered rule.

    Examples:
        >>> rule_name(fix_html)
        'fix_html'
    """
    for key, f in _RULES.items():
        if f is func:
            return key
    raise SerialError(
        f"the tokenizer rule {getattr(func, '__qualname__', func)!r} is not registered, so the tokenizer cannot be "
        "written as data: decorate it with @lamina.text.register_rule (a module-level function)"
    )


def _rule_from_name(key: str) -> Callable[..., Any]:
    if not isinstance(key, str) or key not in _RULES:
        raise SerialError(
            f"no tokenizer rule is registered as {key!r}; registered: {sorted(_RULES)}. Import the module that "
            "registers it (with @register_rule) before loading"
        )
    return _RULES[key]


def _fingerprint(func: Callable[..., Any]) -> str:
    """What identifies a rule's behaviour for the cache: its qualified name and its source text when readable."""
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        source = ""
    return f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', repr(func))}\n{source}"


# ---------------------------------------------------------------- pre-rules (str -> str)

_HTML_BREAK = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)
_CHAR_RUN = re.compile(r"(\S)\1{3,}")
_SPACES = re.compile(r"[^\S\n]+")


@register_rule
def fix_html(text: str) -> str:
    """Turn HTML line breaks into newlines and entities into characters (``&amp;`` -> ``&``).

    Examples:
        >>> fix_html("fish &amp; chips<br />tonight")
        'fish & chips\\ntonight'
    """
    return html.unescape(_HTML_BREAK.sub("\n", text))


def _char_run(m: re.Match[str]) -> str:
    run, text, start, end = m.group(0), m.string, m.start(), m.end()
    c = run[0]
    if c.isalnum() or c == "_":  # a letter run is marked only where it ends a word after another letter
        word_final = c.isalpha() and start > 0 and text[start - 1].isalpha()
        if not (word_final and (end == len(text) or not text[end].isalnum())):
            return run
    return f" {REP} {len(run)} {c} "


@register_rule
def mark_char_repetition(text: str) -> str:
    """Replace a run of 4 or more of the same character by ``xxrep <n> <char>``: a run of punctuation anywhere,
    and a run of letters that ends a word after at least one other letter (``sooooo``, ``yessss``).

    Letter runs inside a word (``goooood``) or making a whole word (``zzzz``) are left alone, so that
    :func:`decode` can glue a marked letter run back to the word before it exactly.

    Examples:
        >>> mark_char_repetition("sooooo good!!!!!")
        's xxrep 5 o  good xxrep 5 ! '
    """
    return _CHAR_RUN.sub(_char_run, text)


@register_rule
def collapse_spaces(text: str) -> str:
    """Replace each run of spaces and tabs by one space and strip the ends.

    Examples:
        >>> collapse_spaces("  two   spaces\\there ")
        'two spaces here'
    """
    return _SPACES.sub(" ", text).strip()


# ---------------------------------------------------------------- splitting

_TOKEN = re.compile(
    r"""(?:https?://|www\.)\S+                 # a URL, kept whole
    | [^\W_]+?(?=[nN]['\u2019][tT]\b)               # the word before n't (do|n't)
    | [nN]['\u2019][tT]\b                           # n't
    | ['\u2019](?i:s|m|d|ll|re|ve)\b                # 's 'm 'd 'll 're 've
    | \d+(?:[.,:]\d+)*(?![^\W_])               # a number: 3.14, 1,000, 10:30
    | [^\W_]+                                  # a word (letters and digits)
    | \.\.\.                                   # an ellipsis
    | \S                                       # any other character on its own
    """,
    re.VERBOSE,
)


def split_words(text: str) -> list[str]:
    """Cut ``text`` into words, numbers, contractions (``do`` ``n't``, ``it`` ``'s``), URLs and single punctuation
    characters (``...`` stays whole); whitespace separates and is dropped.

    Examples:
        >>> split_words("I don't trust it's AI, see https://t.co/x1 at 10:30...")
        ['I', 'do', "n't", 'trust', 'it', "'s", 'AI', ',', 'see', 'https://t.co/x1', 'at', '10:30', '...']
    """
    return _TOKEN.findall(text)


# ---------------------------------------------------------------- post-rules (list[str] -> list[str])


def _is_special(token: str) -> bool:
    return token.startswith("xx") and token in SPECIAL_TOKENS


@register_rule
def mark_word_repetition(tokens: list[str]) -> list[str]:
    """Replace 3 or more repeats of the same token by ``xxwrep <n> <token>``.

    Examples:
        >>> mark_word_repetition(["no", "no", "no", "way", "way"])
        ['xxwrep', '3', 'no', 'way', 'way']
    """
    out: list[str] = []
    i, n = 0, len(tokens)
    while i < n:
        j = i + 1
        while j < n and tokens[j] == tokens[i]:
            j += 1
        if j - i >= 3 and not _is_special(tokens[i]):
            out += [WREP, str(j - i), tokens[i]]
        else:
            out += tokens[i:j]
        i = j
    return out


@register_rule
def mark_all_caps(tokens: list[str]) -> list[str]:
    """Put ``xxup`` before each all-capitals token of two or more characters, and lower-case it.

    Examples:
        >>> mark_all_caps(["I", "LOVE", "it"])
        ['I', 'xxup', 'love', 'it']
    """
    out: list[str] = []
    for t in tokens:
        if len(t) > 1 and t.isupper():
            out += [TK_UP, t.lower()]
        else:
            out.append(t)
    return out


@register_rule
def mark_capitalized(tokens: list[str]) -> list[str]:
    """Put ``xxmaj`` before each token that starts with a capital followed only by lower-case, and lower-case it.

    Examples:
        >>> mark_capitalized(["Google", "is", "I", "iPhone"])
        ['xxmaj', 'google', 'is', 'xxmaj', 'i', 'iPhone']
    """
    out: list[str] = []
    for t in tokens:
        if t[:1].isupper() and t[1:] == t[1:].lower():
            out += [TK_MAJ, t.lower()]
        else:
            out.append(t)
    return out


@register_rule
def lowercase(tokens: list[str]) -> list[str]:
    """Lower-case every token (what the capital markers did not already cover, e.g. ``iPhone``).

    Examples:
        >>> lowercase(["iPhone", "xxmaj"])
        ['iphone', 'xxmaj']
    """
    return [t.lower() for t in tokens]


@register_rule
def add_bos(tokens: list[str]) -> list[str]:
    """Put ``xxbos`` (beginning of text) first, so a language model sees where each text starts.

    Examples:
        >>> add_bos(["hi"])
        ['xxbos', 'hi']
    """
    return [BOS, *tokens]


DEFAULT_PRE_RULES: tuple[Callable[[str], str], ...] = (fix_html, mark_char_repetition, collapse_spaces)
"""The pre-rules of ``WordTokenizer()``, in order."""
DEFAULT_POST_RULES: tuple[Callable[[list[str]], list[str]], ...] = (
    mark_word_repetition,
    mark_all_caps,
    mark_capitalized,
    lowercase,
    add_bos,
)
"""The post-rules of ``WordTokenizer()``, in order."""


# ---------------------------------------------------------------- decoding

_NO_SPACE_BEFORE = frozenset(".,!?;:%)]}…/-") | {"...", "n't", "n\u2019t"}
_NO_SPACE_AFTER = frozenset("([{#@$/-")


def _undo_caps(tokens: Sequence[str]) -> list[str]:
    out: list[str] = []
    marker = None
    for t in tokens:
        if t in (TK_MAJ, TK_UP):
            marker = t
            continue
        if marker is not None:
            t = t.upper() if marker == TK_UP else t[:1].upper() + t[1:]
            marker = None
        out.append(t)
    return out


def _undo_repeats(tokens: list[str]) -> list[tuple[str, bool]]:
    """Tokens with word repeats expanded and character runs rebuilt; each with whether it glues to the token
    before it (a marked letter run continues the word before)."""
    out: list[tuple[str, bool]] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t in (REP, WREP) and i + 2 < len(tokens) and tokens[i + 1].isdigit():
            n, what = int(tokens[i + 1]), tokens[i + 2]
            if t == WREP:
                out += [(what, False)] * n
            else:
                out.append((what * n, what.isalpha() or what in _NO_SPACE_BEFORE))
            i += 3
            continue
        out.append((t, False))
        i += 1
    return out


def join_tokens(tokens: Sequence[str]) -> str:
    """Join plain tokens into text: no space before closing punctuation and contractions, none after ``#``, ``@``
    and opening brackets.

    Examples:
        >>> join_tokens(["I", "do", "n't", "like", "#", "mondays", "(", "really", ")", "!"])
        "I don't like #mondays (really)!"
    """
    return _join([(t, False) for t in tokens])


def _join(parts: list[tuple[str, bool]]) -> str:
    pieces: list[str] = []
    prev = ""
    for t, glue in parts:
        tight = glue or t in _NO_SPACE_BEFORE or (len(t) > 1 and t[:1] in ("'", "\u2019")) or prev in _NO_SPACE_AFTER
        if pieces and not tight:
            pieces.append(" ")
        pieces.append(t)
        prev = t
    return "".join(pieces)


def decode(tokens: Sequence[str]) -> str:
    """Readable text from word tokens: markers undone (``xxmaj``, ``xxup``, ``xxrep``, ``xxwrep``), ``xxbos``,
    ``xxeos`` and ``xxpad`` dropped, tokens joined as :func:`join_tokens` does.

    Examples:
        >>> tok = WordTokenizer()
        >>> decode(tok.tokenize("I don't trust Google's AI, NO NO NO! Sooooo bad!!!!!"))
        "I don't trust Google's AI, NO NO NO! Sooooo bad!!!!!"
    """
    kept = [t for t in tokens if t not in (BOS, EOS, PAD)]
    return _join(_undo_repeats(_undo_caps(kept)))


# ---------------------------------------------------------------- tokenizers


class TextTokenizer(Protocol):
    """What :func:`tokenize_texts`, ``Tokenize`` and export need from a tokenizer (word or subword)."""

    @property
    def is_trained(self) -> bool:
        """Whether the tokenizer can tokenize (a subword model must be trained first)."""
        ...

    def tokenize(self, text: str) -> list[str]:
        """The tokens of one text."""
        ...

    def tokenize_batch(self, texts: Sequence[str]) -> list[list[str]]:
        """The tokens of each text."""
        ...

    def decode(self, tokens: Sequence[str]) -> str:
        """Readable text from tokens."""
        ...

    def train(self, texts: Iterable[str]) -> None:
        """Learn what the tokenizer needs from training texts."""
        ...

    def state(self) -> dict[str, Any]:
        """The tokenizer as JSON-safe data."""
        ...

    def cache_key(self) -> str:
        """What identifies the tokenizer's behaviour, for the on-disk cache."""
        ...


class WordTokenizer:
    """The rule-based word tokenizer: pre-rules, :func:`split_words`, post-rules.

    Args:
        pre_rules: functions ``str -> str`` (or registered names), run in order on each text;
            :data:`DEFAULT_PRE_RULES` when ``None``.
        post_rules: functions ``list[str] -> list[str]`` (or registered names), run in order on the tokens;
            :data:`DEFAULT_POST_RULES` when ``None``.

    Examples:
        >>> tok = WordTokenizer()
        >>> tok.tokenize("I LOVE driverless cars!!!!")
        ['xxbos', 'xxmaj', 'i', 'xxup', 'love', 'driverless', 'cars', 'xxrep', '4', '!']
        >>> WordTokenizer(post_rules=[r for r in DEFAULT_POST_RULES if r is not add_bos]).tokenize("Hi")
        ['xxmaj', 'hi']
    """

    is_trained = True

    def __init__(
        self,
        pre_rules: Sequence[Callable[[str], str] | str] | None = None,
        post_rules: Sequence[Callable[[list[str]], list[str]] | str] | None = None,
    ) -> None:
        self.pre_rules: list[Callable[[str], str]] = _rules(pre_rules, DEFAULT_PRE_RULES, "pre_rules")
        self.post_rules: list[Callable[[list[str]], list[str]]] = _rules(post_rules, DEFAULT_POST_RULES, "post_rules")

    def tokenize(self, text: str) -> list[str]:
        """The tokens of one text."""
        if not isinstance(text, str):
            raise TypeError(f"WordTokenizer.tokenize takes a string, got {type(text).__name__} {text!r}")
        for rule in self.pre_rules:
            text = rule(text)
        tokens = split_words(text)
        for post in self.post_rules:
            tokens = post(tokens)
        return tokens

    def tokenize_batch(self, texts: Sequence[str]) -> list[list[str]]:
        """The tokens of each text.

        Examples:
            >>> WordTokenizer().tokenize_batch(["a b", "C"])
            [['xxbos', 'a', 'b'], ['xxbos', 'xxmaj', 'c']]
        """
        return [self.tokenize(t) for t in texts]

    def decode(self, tokens: Sequence[str]) -> str:
        """Readable text from tokens (see :func:`decode`).

        Examples:
            >>> WordTokenizer().decode(["xxbos", "xxmaj", "hello", "xxup", "ai"])
            'Hello AI'
        """
        return decode(tokens)

    def train(self, texts: Iterable[str]) -> None:
        """Nothing to learn: a word tokenizer is defined by its rules."""

    def state(self) -> dict[str, Any]:
        """The tokenizer as JSON-safe data: its rules by registered name.

        Examples:
            >>> WordTokenizer(pre_rules=["fix_html"], post_rules=[]).state()
            {'kind': 'word', 'pre_rules': ['fix_html'], 'post_rules': []}
        """
        return {
            "kind": "word",
            "pre_rules": [rule_name(r) for r in self.pre_rules],
            "post_rules": [rule_name(r) for r in self.post_rules],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> WordTokenizer:
        """Rebuild a tokenizer written by :meth:`state` (rules looked up in the registry by name).

        Examples:
            >>> tok = WordTokenizer.from_state(WordTokenizer().state())
            >>> tok.tokenize("Hi")
            ['xxbos', 'xxmaj', 'hi']
        """
        if not isinstance(state, dict) or state.get("kind") != "word":
            raise SerialError(f"not a word tokenizer's state: {state!r}")
        pre = [_rule_from_name(k) for k in state.get("pre_rules", [])]
        post = [_rule_from_name(k) for k in state.get("post_rules", [])]
        return cls(pre_rules=pre, post_rules=post)

    def cache_key(self) -> str:
        """A hash of the rules (names and source), so changing a rule changes the cache key.

        Examples:
            >>> WordTokenizer().cache_key() != WordTokenizer(post_rules=[lowercase]).cache_key()
            True
        """
        parts = ["word", *(_fingerprint(r) for r in self.pre_rules), "|", *(_fingerprint(r) for r in self.post_rules)]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def __repr__(self) -> str:
        pre = ", ".join(getattr(r, "__name__", repr(r)) for r in self.pre_rules)
        post = ", ".join(getattr(r, "__name__", repr(r)) for r in self.post_rules)
        return f"WordTokenizer(pre_rules=[{pre}], post_rules=[{post}])"


def _rules(given: Sequence[Any] | None, default: Sequence[Any], what: str) -> list[Any]:
    if given is None:
        return list(default)
    if isinstance(given, str) or callable(given):
        raise TypeError(f"{what} must be a list of rules, got {given!r}: wrap it in a list")
    out = []
    for k, r in enumerate(given):
        f = _rule_from_name(r) if isinstance(r, str) else r
        if not callable(f):
            raise TypeError(f"{what}[{k}] must be a function or a registered rule name, got {r!r}")
        out.append(f)
    return out


def tokenizer_from_state(state: dict[str, Any]) -> TextTokenizer:
    """Rebuild a word or subword tokenizer from its ``state()`` (the kinds are a fixed list; nothing is unpickled).

    Examples:
        >>> tokenizer_from_state(WordTokenizer().state()).tokenize("ok")
        ['xxbos', 'ok']
    """
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind == "word":
        return WordTokenizer.from_state(state)
    if kind == "subword":
        from lamina.text.subword import SubwordTokenizer

        return SubwordTokenizer.from_state(state)
    raise SerialError(f"unknown tokenizer kind {kind!r} in {state!r}: expected 'word' or 'subword'")


# ---------------------------------------------------------------- tokenizing a corpus


class TokenizedTexts:
    """The tokens of a corpus: in a cache file (read back one text at a time) or in memory, each text's tokens kept
    as one string (tokens joined by spaces: a few times smaller than a list of strings) and split when read.

    Attributes:
        counts: how often each token occurs in the whole corpus.
        n_tokens: the number of tokens.
        path: the cache file (one text a line, tokens separated by spaces), or ``None`` when in memory.
        cache_hit: whether the tokens were read from an existing cache file.

    Examples:
        >>> toks = tokenize_texts(["Hi there", "hi"])
        >>> len(toks), toks.n_tokens, toks.counts["hi"], toks.to_list()[1]
        (2, 6, 2, ['xxbos', 'hi'])
    """

    def __init__(
        self,
        n_texts: int,
        counts: Counter[str],
        path: Path | None = None,
        lines: list[str] | None = None,
        cache_hit: bool = False,
    ) -> None:
        self.n_texts, self.counts, self.path, self._lines, self.cache_hit = n_texts, counts, path, lines, cache_hit
        self.n_tokens = sum(counts.values())

    def __len__(self) -> int:
        return self.n_texts

    def __iter__(self) -> Iterator[list[str]]:
        if self._lines is not None:
            return (line.split(" ") if line else [] for line in self._lines)
        return self._read()

    def _read(self) -> Iterator[list[str]]:
        assert self.path is not None
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                body = line[:-1]
                yield body.split(" ") if body else []

    def to_list(self) -> list[list[str]]:
        """Every text's tokens, in memory."""
        return list(self)

    def __repr__(self) -> str:
        where = f"cache {self.path.name}" if self.path is not None else "in memory"
        return f"TokenizedTexts({self.n_texts} texts, {self.n_tokens} tokens, {where})"


def corpus_key(texts: Iterable[str], tokenizer: TextTokenizer) -> str:
    """The cache key of tokenizing ``texts`` with ``tokenizer``: a SHA-256 of every text and of the tokenizer's rules.

    Args:
        texts: the texts (read once).
        tokenizer: the tokenizer (its ``cache_key()``).

    Examples:
        >>> tok = WordTokenizer()
        >>> corpus_key(["a", "b"], tok) == corpus_key(["a", "b"], tok) != corpus_key(["a", "c"], tok)
        True
    """
    h = hashlib.sha256(f"lamina-tokens-{CACHE_FORMAT}\n{tokenizer.cache_key()}\n".encode())
    for t in texts:
        data = _check_text(t).encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _check_text(t: Any) -> str:
    if not isinstance(t, str):
        raise TypeError(f"texts must be strings, got {type(t).__name__} {t!r}: convert the column with .astype(str)")
    return t


def _chunks(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for t in texts:
        chunk.append(_check_text(t))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _tokenize_chunk(tokenizer: TextTokenizer, texts: list[str]) -> tuple[str, dict[str, int]]:
    """One chunk: its lines (tokens joined by spaces, one text a line) and its token counts."""
    token_lists = tokenizer.tokenize_batch(texts)
    counts: Counter[str] = Counter()
    for tokens in token_lists:
        counts.update(tokens)
    return "".join(" ".join(tokens) + "\n" for tokens in token_lists), dict(counts)


_WORKER: dict[str, Any] = {}  # the tokenizer of a worker process, set once by _init_worker


def _init_worker(tokenizer: TextTokenizer) -> None:
    _WORKER["tokenizer"] = tokenizer


def _tokenize_in_worker(texts: list[str]) -> tuple[str, dict[str, int]]:
    return _tokenize_chunk(_WORKER["tokenizer"], texts)


def _pool(tokenizer: TextTokenizer, n_workers: int) -> ProcessPoolExecutor:
    import multiprocessing
    import pickle

    try:
        pickle.dumps(tokenizer)
    except (pickle.PicklingError, AttributeError, TypeError) as e:
        raise ValueError(
            f"n_workers={n_workers} sends the tokenizer to worker processes, but it cannot be pickled ({e}): make "
            "its rules module-level functions (not lambdas or local functions), or use n_workers=1"
        ) from e
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    return ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_init_worker, initargs=(tokenizer,))


def _tokenized_chunks(
    texts: Iterable[str], tokenizer: TextTokenizer, n_workers: int, chunk_size: int
) -> Iterator[tuple[str, dict[str, int]]]:
    """The chunks' results in order; at most ``2 * n_workers`` chunks are in flight, so memory stays bounded."""
    if n_workers == 1:
        for chunk in _chunks(texts, chunk_size):
            yield _tokenize_chunk(tokenizer, chunk)
        return
    with _pool(tokenizer, n_workers) as pool:
        pending: deque[Future[tuple[str, dict[str, int]]]] = deque()
        for chunk in _chunks(texts, chunk_size):
            pending.append(pool.submit(_tokenize_in_worker, chunk))
            if len(pending) >= 2 * n_workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def tokenize_texts(
    texts: Iterable[str],
    tokenizer: TextTokenizer | None = None,
    n_workers: int = 1,
    chunk_size: int = 2000,
    cache_dir: str | Path | None = None,
) -> TokenizedTexts:
    """Tokenize a corpus in ``n_workers`` processes, ``chunk_size`` texts at a time, optionally cached on disk.

    With ``cache_dir`` the tokens stream into a file named by :func:`corpus_key` (the texts and the tokenizer's
    rules), so memory holds a few chunks, never the corpus; a later call with the same texts and rules reads that
    file (``cache_hit``), and any change of a text or a rule tokenizes again. ``texts`` is then read twice (once to
    hash it), so it must be a collection (a list, a Series, a lazy sequence of files), not a one-shot iterator.
    Without ``cache_dir`` the tokens are kept in memory.

    Args:
        texts: the texts.
        tokenizer: a trained tokenizer; ``WordTokenizer()`` when ``None``.
        n_workers: processes tokenizing chunks in parallel (1: in this process). The tokenizer is sent to each
            worker once, so its rules must be picklable (module-level functions).
        chunk_size: texts per chunk.
        cache_dir: the folder of the cache files; no disk cache when ``None``.

    Examples:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> first = tokenize_texts(["Hello world"], cache_dir=folder)
        >>> again = tokenize_texts(["Hello world"], cache_dir=folder)
        >>> first.cache_hit, again.cache_hit, again.to_list()
        (False, True, [['xxbos', 'xxmaj', 'hello', 'world']])
    """
    tokenizer = tokenizer if tokenizer is not None else WordTokenizer()
    if n_workers < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if not tokenizer.is_trained:
        raise ValueError(f"{tokenizer!r} is not trained: call tokenizer.train(training_texts) first")
    if cache_dir is None:
        return _in_memory(texts, tokenizer, n_workers, chunk_size)
    if iter(texts) is texts:
        raise TypeError(
            "tokenize_texts with cache_dir reads the texts twice (to hash them, then to tokenize), but got a one-shot "
            "iterator: pass a list or another collection (e.g. a lazy sequence of files)"
        )
    key = corpus_key(texts, tokenizer)
    path, meta_path = Path(cache_dir) / f"{key}.tokens", Path(cache_dir) / f"{key}.json"
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        return TokenizedTexts(meta["n_texts"], Counter(meta["counts"]), path=path, cache_hit=True)
    counts: Counter[str] = Counter()
    n_texts = 0
    with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        for lines, chunk_counts in _tokenized_chunks(texts, tokenizer, n_workers, chunk_size):
            out.write(lines)
            counts.update(chunk_counts)
            n_texts += lines.count("\n")
    with atomic_write(meta_path) as tmp:
        tmp.write_text(json.dumps({"n_texts": n_texts, "counts": counts, "tokenizer": tokenizer.cache_key()}))
    return TokenizedTexts(n_texts, counts, path=path)


def _in_memory(texts: Iterable[str], tokenizer: TextTokenizer, n_workers: int, chunk_size: int) -> TokenizedTexts:
    counts: Counter[str] = Counter()
    kept: list[str] = []
    for lines, chunk_counts in _tokenized_chunks(texts, tokenizer, n_workers, chunk_size):
        counts.update(chunk_counts)
        kept += lines[:-1].split("\n")
    return TokenizedTexts(len(kept), counts, lines=kept)
