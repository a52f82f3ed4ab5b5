"""Progress bars (tqdm: a terminal bar, or a widget in Jupyter) that keep the per-epoch table clean."""

from __future__ import annotations

import time
from typing import Any

from lamina.learner.callback import Callback

__all__ = ["ProgressCallback"]


class ProgressCallback(Callback):
    """A bar per training and validation phase showing batches done and the loss; epoch rows print above it.

    Remove it (``with learn.no_bar():``) for silent runs.

    Args:
        refresh: seconds between updates of the loss shown on the bar.

    Examples:
        >>> ProgressCallback().refresh
        0.2
    """

    order = 70

    def __init__(self, refresh: float = 0.2) -> None:
        from tqdm.auto import tqdm

        self.refresh, self._tqdm = refresh, tqdm
        self._bar: Any = None

    def before_fit(self) -> None:
        self._old_logger = self.learn.logger
        if self.learn.logger is print:
            self.learn.logger = self._tqdm.write

    def _open(self, desc: str) -> None:
        self._close()
        self._bar = self._tqdm(total=len(self.learn.dl), desc=desc, leave=False, dynamic_ncols=True)
        self._shown = time.perf_counter()

    def before_train(self) -> None:
        self._open(f"epoch {self.learn.epoch + 1}/{self.learn.n_epoch} train")

    def before_validate(self) -> None:
        self._open("valid")

    def after_batch(self) -> None:
        if self._bar is None:
            return
        self._bar.update(1)
        now = time.perf_counter()
        if self.learn.training and now - self._shown > self.refresh:
            self._bar.set_postfix(loss=f"{float(self.learn.loss.detach()):.4f}", refresh=False)
            self._shown = now

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
