"""Lottery tickets (IMP with rewinding) and Early-Bird tickets: the baselines of SPEC §9.

IMP (Frankle & Carbin, ICLR 2019; rewinding, Frankle et al., ICML 2020; the
defaults of ``facebookresearch/open_lth``) trains, prunes 20% of the remaining
weights by global magnitude and rewinds the survivors, level after level;
Early-Bird (You et al., ICLR 2020) draws the ticket from a dense run as soon as
its magnitude mask stops moving. Both write a folder of their own kind
(``lottery``, ``earlybird``) whose trainings are ordinary, resumable runs.

Modules:

* :mod:`~fullspectrum.tickets.schedule`: IMP's integer counts per level (``imp_levels``, ``target_count``);
* :mod:`~fullspectrum.tickets.magnitude`: global magnitude masks, within a current mask, and the
  kept-set distance ``1 - |A ∩ B| / k``;
* :mod:`~fullspectrum.tickets.early_bird`: the Early-Bird criterion over a sequence of epoch masks;
* :mod:`~fullspectrum.tickets.config`: ``LotteryConfig`` and ``EarlyBirdConfig``;
* :mod:`~fullspectrum.tickets.folder`: a search's folder: created or continued, its trainings as subruns;
* :mod:`~fullspectrum.tickets.lottery`: ``run_lottery`` / ``resume_lottery``, one training per level;
* :mod:`~fullspectrum.tickets.early_bird_search`: ``run_earlybird`` / ``resume_earlybird``, the dense
  search ended at the ticket's epoch and the ticket's training.
"""

from __future__ import annotations

from fullspectrum.tickets.config import EarlyBirdConfig, LotteryConfig
from fullspectrum.tickets.early_bird import EarlyBirdCheck, check_epoch, early_bird_checks, early_bird_epoch
from fullspectrum.tickets.early_bird_search import EarlyBirdResult, resume_earlybird, run_earlybird
from fullspectrum.tickets.lottery import LevelResult, LotteryResult, resume_lottery, run_lottery
from fullspectrum.tickets.magnitude import classifier_name, global_magnitude_mask, kept_set_distance
from fullspectrum.tickets.schedule import PRUNE_FRACTION, imp_levels, target_count

__all__ = [
    "PRUNE_FRACTION",
    "EarlyBirdCheck",
    "EarlyBirdConfig",
    "EarlyBirdResult",
    "LevelResult",
    "LotteryConfig",
    "LotteryResult",
    "check_epoch",
    "classifier_name",
    "early_bird_checks",
    "early_bird_epoch",
    "global_magnitude_mask",
    "imp_levels",
    "kept_set_distance",
    "resume_earlybird",
    "resume_lottery",
    "run_earlybird",
    "run_lottery",
    "target_count",
]
