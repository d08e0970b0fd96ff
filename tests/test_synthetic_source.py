"""``smg_jax.data.synthetic_source``: the user's raw SMG, or a synthetic one written on demand."""

import re

import ml_collections
import pytest

from smg_jax.data import synthetic_source
from smg_jax.emotion.data import EmotionError
from smg_jax.online.errors import OnlineError
from smg_jax.train.errors import ConfigError
from tfds_smg import synthetic


def _data(manual_dir, scale="tiny", seed=0):
    return ml_collections.ConfigDict(
        {"manual_dir": None if manual_dir is None else str(manual_dir),
         "synthetic_scale": scale, "synthetic_seed": seed}
    )  # fmt: skip


def test_without_a_scale_the_folder_is_used_as_it_is(tmp_path):
    assert synthetic_source.ensure_raw_data(_data(tmp_path / "smg", scale=None)) == str(
        tmp_path / "smg"
    )
    assert not (tmp_path / "smg").exists()  # nothing written
    assert synthetic_source.ensure_raw_data(_data(None, scale=None)) is None


@pytest.mark.parametrize("error", [ConfigError, EmotionError, OnlineError])
def test_a_scale_without_a_folder_fails_with_the_tasks_error(error):
    with pytest.raises(error, match=r"data\.manual_dir is not: say where"):
        synthetic_source.ensure_raw_data(_data(None), error)


def test_real_unmarked_data_is_never_overwritten(tmp_path):
    sample = tmp_path / "Sample0001"
    sample.mkdir()
    (sample / "skeleton.txt").write_text("real data\n")
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path} holds real (unmarked) SMG data")):
        synthetic_source.ensure_raw_data(_data(tmp_path), ConfigError)
    assert (sample / "skeleton.txt").read_text() == "real data\n"
    assert synthetic.read_marker(tmp_path) is None


def test_writes_a_synthetic_smg_once_and_then_reuses_it(tmp_path):
    root = tmp_path / "raw"
    assert synthetic_source.ensure_raw_data(_data(root, seed=3)) == str(root)
    marker = synthetic.read_marker(root)
    assert marker is not None and marker["seed"] == 3
    assert any(root.glob("Sample*"))
    written = (root / synthetic.MARKER_NAME).stat().st_mtime_ns
    # Asked again (even with another seed), the existing synthetic copy is kept.
    assert synthetic_source.ensure_raw_data(_data(root, seed=4)) == str(root)
    assert (root / synthetic.MARKER_NAME).stat().st_mtime_ns == written
