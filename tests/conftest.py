"""Shared test fixtures: the golden files in tests/golden, and the archives in ../shared."""

from __future__ import annotations

import json
import os
import pathlib

import golden_weights
import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DIR = pathlib.Path(os.environ.get("SMG_SHARED_DIR", REPO_ROOT.parent / "shared"))
# The repository's golden files (tools/make_goldens.py writes them) and the
# authors' perturbed weights kept outside the repository.
GOLDEN_DIR = REPO_ROOT / "tests" / "golden"
SHARED_GOLDEN_DIR = SHARED_DIR / "golden"

# SMG_SLOW=full runs the slow checks in full; CI runs their reduced form.
SLOW_FULL = os.environ.get("SMG_SLOW", "") == "full"


def load_golden(name: str) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict]:
    """Returns ``(input (N, C, T, V, M), logits, state_dict, meta)`` of ``tests/golden/<name>``.

    The state_dict is rebuilt from the file's seed and layout
    (``golden_weights.rebuild_state_dict``); the logits are what the authors'
    model computed with those weights.
    """
    meta = json.loads((GOLDEN_DIR / f"{name}.json").read_text())
    with np.load(GOLDEN_DIR / f"{name}.npz") as data:
        stored = {key: data[key] for key in data.files if key.startswith("constants/")}
        inputs, logits = data["input"], data["logits"]
    constants = {key.removeprefix("constants/"): value for key, value in stored.items()}
    state_dict = golden_weights.rebuild_state_dict(meta["seed"], meta["state_dict"], constants)
    return inputs, logits, state_dict, meta


def load_shared_golden(name: str) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict]:
    """As ``load_golden``, from ``../shared/golden/<name>``: the authors' own perturbed weights.

    Skips the calling test with a clear reason when that archive is absent.
    """
    archive = SHARED_GOLDEN_DIR / f"{name}.npz"
    if not archive.exists():
        pytest.skip(
            f"golden archive {archive} is absent: this check needs the authors' weights in "
            "../shared/golden (set SMG_SHARED_DIR to point elsewhere); tests/golden covers "
            "the same parity with rebuilt weights."
        )
    with np.load(archive) as data:
        state_dict = {k[len("params/") :]: data[k] for k in data.files if k.startswith("params/")}
        inputs, logits = data["input"], data["logits"]
    meta = json.loads((SHARED_GOLDEN_DIR / f"{name}.json").read_text())
    return inputs, logits, state_dict, meta


def torch_to_ours(inputs: np.ndarray) -> np.ndarray:
    """``(N, C, T, V, M)`` PyTorch layout -> our ``(N, M, T, V, C)``."""
    return np.transpose(inputs, (0, 4, 2, 3, 1))


def assert_logits_close(ours: np.ndarray, golden: np.ndarray) -> None:
    """The faithfulness criterion: ``max|ours - golden| <= 1e-4 * max(1, max|golden|)``."""
    tolerance = 1e-4 * max(1.0, float(np.abs(golden).max()))
    error = float(np.abs(np.asarray(ours) - golden).max())
    assert error <= tolerance, f"max |ours - golden| = {error:.3g} > tolerance {tolerance:.3g}"


@pytest.fixture
def golden():
    return load_golden
