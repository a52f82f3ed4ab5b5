"""Progress bars (tqdm: a terminal bar, or a widget in Jupyter) that keep the per-epoch table clean.

Where the bars' stream is not a terminal (CI logs, a file, a pipe) a bar would be written as thousands of
carriage-return updates; there the callback writes one plain line per epoch instead.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from lamina.learner.callback import Callback

__all__ = ["ProgressCallback", "wants_plain_progress"]


def wants_plain_progress(tqdm_cls: Any, stream: Any) -> bool:
    """Whether progress should be plain lines: ``stream`` is not a terminal and ``tqdm_cls`` is not a notebook widget.

    Args:
        tqdm_cls: the tqdm class in use (``tqdm.auto.tqdm`` picks a widget inside Jupyter).
        stream: where the bars would be written (tqdm writes to ``sys.stderr``).

    Examples:
        >>> import io
        >>> from tqdm import tqdm
        >>> wants_plain_progress(tqdm, io.StringIO())
        True
    """
    if any(c.__module__.startswith("tqdm.notebook") for c in getattr(tqdm_cls, "__mro__", ())):
        return False
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


class ProgressCallback(Callback):
    """A bar per training and validation phase showing batches done and the loss; epoch rows print above it.

    When the output is not a terminal (see ``plain``) there are no bars: one line per epoch goes to ``sys.stderr``
    (batches done, last training loss, time). Remove the callback (``with learn.no_bar():``) for silent runs.

    Args:
        refresh: seconds between updates of the loss shown on the bar.
        plain: ``True`` one line per epoch, ``False`` bars; ``None`` decides at each fit from ``sys.stderr``.

    Examples:
        >>> ProgressCallback().refresh
        0.2
    """

    order = 70
    main_process_only = True

    def __init__(self, refresh: float = 0.2, plain: bool | None = None) -> None:
        from tqdm.auto import tqdm

        self.refresh, self.plain, self._tqdm = refresh, plain, tqdm
        self._bar: Any = None
        self._plain = False

    def before_fit(self) -> None:
        self._plain = self.plain if self.plain is not None else wants_plain_progress(self._tqdm, sys.stderr)
        self._old_logger = self.learn.logger
        if self.learn.logger is print and not self._plain:
            self.learn.logger = self._tqdm.write

    def before_epoch(self) -> None:
        self._epoch_start, self._done = time.perf_counter(), {"train": 0, "valid": 0}

    def _open(self, desc: str) -> None:
        self._close()
        if self._plain:
            return
        self._bar = self._tqdm(total=len(self.learn.dl), desc=desc, leave=False, dynamic_ncols=True)
        self._shown = time.perf_counter()

    def before_train(self) -> None:
        self._open(f"epoch {self.learn.epoch + 1}/{self.learn.n_epoch} train")

    def before_validate(self) -> None:
        self._open("valid")

    def after_batch(self) -> None:
        if self._plain:
            self._done["train" if self.learn.training else "valid"] += 1
            return
        if self._bar is None:
            return
        self._bar.update(1)
        now = time.perf_counter()
        if self.learn.training and now - self._shown > self.refresh:
            self._bar.set_postfix(loss=f"{float(self.learn.loss.detach()):.4f}", refresh=False)
            self._shown = now

    def after_epoch(self) -> None:
        if not self._plain:
            return
        learn, done = self.learn, self._done
        loss = f", loss {float(learn.loss.detach()):.4f}" if done["train"] else ""
        took = time.perf_counter() - self._epoch_start
        print(
            f"epoch {learn.epoch + 1}/{learn.n_epoch}: {done['train']} train and {done['valid']} valid batches"
            f"{loss}, {took:.1f}s",
            file=sys.stderr,
            flush=True,
        )

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def after_train(self) -> None:
        self._close()

    def after_validate(self) -> None:
        self._close()

    def after_fit(self) -> None:
        self._close()
        if self.learn.logger is self._tqdm.write:
            self.learn.logger = self._old_logger
