"""The Early-Bird criterion: when a dense run's magnitude mask has stopped moving (You et al., ICLR 2020).

At the end of every epoch of dense training the global-magnitude mask at the
target density is taken (``k`` kept weights). The ticket is drawn at the first
epoch whose mask is within ``threshold`` (0.1) of *each* of the previous
``window`` (4) epochs' masks, the distance being the share of the kept set that
changed (:func:`~fullspectrum.tickets.magnitude.kept_set_distance`), as the
authors' ``EarlyBird`` class compares the newest of its five queued masks with
the other four. When no epoch qualifies the ticket is the last epoch's (SPEC §9).

>>> import torch
>>> masks = [{"w": torch.tensor(bits)} for bits in ([1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0])]
>>> [check.distances for check in early_bird_checks(masks, window=2, threshold=0.1)]
[(), (0.5,), (0.0, 0.5)]
>>> early_bird_epoch(masks, window=2, threshold=0.1), early_bird_epoch(masks, window=1, threshold=0.1)
(3, 3)
>>> early_bird_epoch(masks[:2], window=1, threshold=0.1)
2
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from torch import Tensor

from fullspectrum.errors import FullSpectrumError
from fullspectrum.tickets.magnitude import kept_set_distance

WINDOW = 4
"""Previous epochs a mask is compared with (the authors' queue of five masks)."""
THRESHOLD = 0.1
"""Largest kept-set distance to each of them at which the ticket is drawn (the authors' 0.1)."""


@dataclass(frozen=True)
class EarlyBirdCheck:
    """The criterion at the end of one epoch."""

    epoch: int
    """The epoch (1-based: its mask is the one taken after that many epochs)."""
    distances: tuple[float, ...]
    """Kept-set distance to the previous epochs' masks, the most recent first (up to ``window``)."""
    emerged: bool
    """``window`` previous masks exist and every distance is below the threshold."""

    def as_dict(self) -> dict:
        row = asdict(self)
        row["distances"] = list(self.distances)
        return row


def check_epoch(
    masks: Sequence[Mapping[str, Tensor]],
    *,
    window: int = WINDOW,
    threshold: float = THRESHOLD,
) -> EarlyBirdCheck:
    """The criterion for the last of ``masks`` (the masks of epochs ``1..len(masks)``, in order)."""
    _check_settings(window, threshold)
    if not masks:
        raise FullSpectrumError("the Early-Bird criterion needs at least one epoch's mask")
    newest = masks[-1]
    previous = list(masks[-1 - window : -1])[::-1]
    distances = tuple(kept_set_distance(newest, older) for older in previous)
    emerged = len(distances) == window and all(distance < threshold for distance in distances)
    return EarlyBirdCheck(epoch=len(masks), distances=distances, emerged=emerged)


def early_bird_checks(
    masks: Sequence[Mapping[str, Tensor]],
    *,
    window: int = WINDOW,
    threshold: float = THRESHOLD,
) -> list[EarlyBirdCheck]:
    """:func:`check_epoch` at every epoch of ``masks``."""
    return [check_epoch(masks[: end + 1], window=window, threshold=threshold) for end in range(len(masks))]


def early_bird_epoch(
    masks: Sequence[Mapping[str, Tensor]],
    *,
    window: int = WINDOW,
    threshold: float = THRESHOLD,
) -> int:
    """The ticket's epoch: the first at which the criterion holds, else the last one."""
    for check in early_bird_checks(masks, window=window, threshold=threshold):
        if check.emerged:
            return check.epoch
    if not masks:
        raise FullSpectrumError("the Early-Bird criterion needs at least one epoch's mask")
    return len(masks)


def _check_settings(window: int, threshold: float) -> None:
    if int(window) != window or window < 1:
        raise FullSpectrumError(f"Early-Bird window must be a whole number >= 1, got {window}")
    if not 0.0 < threshold <= 1.0:
        raise FullSpectrumError(f"Early-Bird threshold must be in (0, 1], got {threshold}")
