"""Shared test fixtures: paths to ../shared and the golden archives."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DIR = pathlib.Path(os.environ.get("SMG_SHARED_DIR", REPO_ROOT.parent / "shared"))
GOLDEN_DIR = SHARED_DIR / "golden"

# SMG_SLOW=full runs the slow checks in full; CI runs their reduced form.
SLOW_FULL = os.environ.get("SMG_SLOW", "") == "full"


def load_golden(name: str) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict]:
    """Returns ``(input (N, C, T, V, M), logits, state_dict, meta)`` of ``golden/<name>``.

    Skips the calling test with a clear reason when ``../shared/golden`` is absent.
    """
    archive = GOLDEN_DIR / f"{name}.npz"
    if not archive.exists():
        pytest.skip(
            f"golden archive {archive} is absent: parity tests need the authors' outputs in "
            "../shared/golden (set SMG_SHARED_DIR to point elsewhere)."
        )
    with np.load(archive) as data:
        state_dict = {k[len("params/") :]: data[k] for k in data.files if k.startswith("params/")}
        inputs, logits = data["input"], data["logits"]
    meta = json.loads((GOLDEN_DIR / f"{name}.json").read_text())
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
