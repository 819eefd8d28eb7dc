"""The two-stream sampler: every iteration draws one labeled and one classification-only batch."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
from typing import Any

__all__ = ["TwoStreamLoader"]


class TwoStreamLoader:
    """Zip a labeled and an (optional) unlabeled loader, cycling the shorter one.

    One pass ("epoch") has as many iterations as the longer loader; the shorter one restarts
    (re-shuffling, if its sampler shuffles) whenever it runs out. Each item is
    ``{"labeled": batch}`` or ``{"labeled": batch, "unlabeled": batch}``.

    Args:
        labeled: loader of image / label / level-set / class batches.
        unlabeled: loader of image / class batches, or None for labeled-only training (eq. 11 alone).
    """

    def __init__(self, labeled: Iterable, unlabeled: Iterable | None = None) -> None:
        self.labeled = labeled
        self.unlabeled = unlabeled

    def __len__(self) -> int:
        loaders: tuple[object, ...] = (self.labeled, self.unlabeled)  # (mypy narrows object, not Iterable, to Sized)
        sizes = [len(s) for s in loaders if isinstance(s, Sized)]
        if not sizes:
            raise TypeError("neither loader has a length; give the trainer an epoch_length.")
        return max(sizes)

    @staticmethod
    def _cycle(loader: Iterable) -> Iterator[Any]:
        while True:
            empty = True
            for batch in loader:
                empty = False
                yield batch
            if empty:
                raise ValueError("a training loader yielded no batch: is its data set empty?")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        streams = {"labeled": self._cycle(self.labeled)}
        if self.unlabeled is not None:
            streams["unlabeled"] = self._cycle(self.unlabeled)
        for _ in range(len(self)):
            yield {name: next(stream) for name, stream in streams.items()}
