"""Subject-independent protocols: which participants train and which test, fold by fold.

Every protocol here keeps a participant's instances on one side of each
fold: a participant's relaxed and stressed instances share the person, the
chair and the session, and a model that has seen the person would learn
them instead of the state.

* ``cross_subject``: the paper's split, participants 1-35 train, 36-40 test
  (one fold). Its test set holds few instances (20 in SMG), hence:
* ``cv``: ``num_folds``-fold subject-wise cross-validation. Participants are
  put in a fixed pseudo-random order (``numpy.random.default_rng(seed)``
  permutation of the sorted participant numbers) and dealt greedily to the
  fold with the fewest instances so far (ties: the lowest fold), so folds
  hold nearly equal numbers of instances. The folds depend only on the set
  of participants, their instance counts and ``seed``: the same every run
  and on every machine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from smg_jax.emotion.data import EmotionError

PROTOCOLS = ("cross_subject", "cv")


@dataclasses.dataclass(frozen=True)
class Fold:
    """One train/test partition of the participants."""

    index: int
    train_subjects: tuple[int, ...]
    test_subjects: tuple[int, ...]

    def name(self) -> str:
        return f"fold{self.index}"

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "train_subjects": list(self.train_subjects),
            "test_subjects": list(self.test_subjects),
        }


def parse_subjects(text: str) -> tuple[int, ...]:
    """``"1-35"`` or ``"1-3,36,38-40"`` -> sorted participant numbers.

    Raises:
      EmotionError: a part that is not ``N`` or ``N-M`` with ``1 <= N <= M <= 40``.
    """
    subjects: set[int] = set()
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise EmotionError(
                f"subjects {text!r}: {part!r} is not N or N-M (e.g. '1-35' or '1-3,36')."
            ) from None
        if not 1 <= first <= last <= 40:
            raise EmotionError(f"subjects {text!r}: {part!r} is outside participants 1-40.")
        subjects.update(range(first, last + 1))
    if not subjects:
        raise EmotionError(f"subjects {text!r} names no participant.")
    return tuple(sorted(subjects))


def cross_subject(subjects: Sequence[int], train_subjects: Sequence[int]) -> list[Fold]:
    """The paper's split as one fold: ``train_subjects`` train, every other participant tests.

    Raises:
      EmotionError: either side would be empty.
    """
    present = sorted(set(int(s) for s in subjects))
    train = tuple(s for s in present if s in set(train_subjects))
    test = tuple(s for s in present if s not in set(train_subjects))
    if not train or not test:
        raise EmotionError(
            f"cross_subject: participants {present} leave no "
            f"{'training' if not train else 'test'} participant with train subjects "
            f"{list(train_subjects)[:3]}...; build the dataset from all 40 participants or "
            "use protocol.name='cv'."
        )
    return [Fold(0, train, test)]


def subject_folds(
    instances_per_subject: Mapping[int, int], num_folds: int = 5, seed: int = 0
) -> list[Fold]:
    """Deterministic subject-wise folds with nearly equal instance counts.

    Args:
      instances_per_subject: ``{participant: number of instances}``.
      num_folds: ``K >= 2``; at most the number of participants.
      seed: fixes the participants' order (see the module docstring).

    Returns:
      ``K`` folds; fold ``k`` tests its own participants and trains on all others.
      Every participant is tested in exactly one fold.
    """
    subjects = sorted(int(s) for s in instances_per_subject)
    if num_folds < 2:
        raise EmotionError(f"protocol.num_folds={num_folds}: cross-validation needs >= 2 folds.")
    if len(subjects) < num_folds:
        raise EmotionError(
            f"protocol.num_folds={num_folds} but only {len(subjects)} participants "
            f"({subjects}); lower num_folds or add participants."
        )
    order = np.random.default_rng(seed).permutation(len(subjects))
    load = np.zeros(num_folds, np.int64)
    members: list[list[int]] = [[] for _ in range(num_folds)]
    # Larger participants first (stable, so the permutation breaks ties): the greedy
    # deal then evens the folds out to within one participant's instances.
    ranked = sorted(order.tolist(), key=lambda i: -int(instances_per_subject[subjects[i]]))
    for i in ranked:
        subject = subjects[i]
        target = int(np.argmin(load))  # first minimum: the lowest fold among ties
        members[target].append(subject)
        load[target] += int(instances_per_subject[subject])
    folds = []
    for k, test in enumerate(members):
        test_set = set(test)
        folds.append(
            Fold(k, tuple(s for s in subjects if s not in test_set), tuple(sorted(test_set)))
        )
    return folds


def make_folds(protocol: Mapping[str, object], subjects_of_instances: Sequence[int]) -> list[Fold]:
    """The folds of the config's ``protocol`` section for instances of these participants.

    Args:
      protocol: ``name`` in ``PROTOCOLS``; ``num_folds`` and ``seed`` for ``cv``;
        ``train_subjects`` (e.g. ``"1-35"``) for ``cross_subject``.
      subjects_of_instances: the participant of every instance.
    """
    name = protocol["name"]
    if name not in PROTOCOLS:
        raise EmotionError(f"protocol.name={name!r}; choose from {list(PROTOCOLS)}.")
    counts: dict[int, int] = {}
    for subject in subjects_of_instances:
        counts[int(subject)] = counts.get(int(subject), 0) + 1
    if name == "cross_subject":
        return cross_subject(sorted(counts), parse_subjects(str(protocol["train_subjects"])))
    return subject_folds(counts, int(protocol["num_folds"]), int(protocol["seed"]))


def check_folds(folds: Sequence[Fold]) -> None:
    """Raises ``EmotionError`` unless every fold is subject-disjoint and no subject tests twice."""
    tested: set[int] = set()
    for fold in folds:
        overlap = set(fold.train_subjects) & set(fold.test_subjects)
        if overlap:
            raise EmotionError(f"{fold.name()}: participants {sorted(overlap)} train and test.")
        again = tested & set(fold.test_subjects)
        if again:
            raise EmotionError(f"{fold.name()}: participants {sorted(again)} are tested twice.")
        tested |= set(fold.test_subjects)
