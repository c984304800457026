"""How gailkit scores a policy: one evaluation-seed convention, one normalised score.

Evaluation episode ``i`` is reset with seed ``EVAL_SEED + i`` (plus an offset when one run
needs several disjoint sets); training seeds stay below ``EVAL_SEED``, so no policy is ever
scored on an episode it was trained on. Every evaluation in the library (experts' cards,
imitation runs, world-model controllers, benchmarks) uses it, so two numbers measured on the
same env are measured on the same episodes.
"""

from __future__ import annotations

__all__ = ["EVAL_SEED", "normalised_return"]

EVAL_SEED = 10_000_000


def normalised_return(value: float, expert: float | None, random_return: float | None) -> float | None:
    """``(R - random) / (expert - random)``: 0 is the random policy, 1 the expert; None when either
    reference is unknown (or both are equal)."""
    if expert is None or random_return is None or expert == random_return:
        return None
    return (value - random_return) / (expert - random_return)
