"""``experiments.benchmark``: one JSON line per configuration, on a small model, and its flags."""

import json

import pytest

from experiments import benchmark, torch_reference_benchmark
from smg_jax.runtime import allocator, onednn


def test_prints_one_json_row_per_model_batch_and_frame_count(capsys):
    small = ["--override", "channels=(8, 16)", "--override", "strides=(1, 2)"]
    argv = ["--models", "stgcn", "--batch", "2,4", "--frames", "8", "--steps", "1", "--warmup", "0"]
    assert benchmark.main(argv + small) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(row["model"], row["batch"], row["frames"]) for row in rows] == [
        ("stgcn", 2, 8),
        ("stgcn", 4, 8),
    ]
    for row in rows:
        assert row["train_clips_per_s"] > 0 and row["infer_clips_per_s"] > 0
        assert row["init_s"] > 0 and row["train_compile_s"] > 0
        assert row["overrides"] == {"channels": "(8, 16)", "strides": "(1, 2)"}
        assert row["backend"] == "cpu" and row["peak_memory_bytes"] is None  # CPU reports none
        assert row["host_allocator"] == allocator.in_use()
        # main set the runtime up: oneDNN runs them wherever it can be built.
        assert row["temporal_convolutions"] == onednn.describe()
        ran = row["temporal_convolutions"].split()[0]
        assert ran == ("onednn" if onednn.registered() else "xla")
        assert isinstance(row["train_page_faults_per_step"], int)
        assert row["train_page_faults_per_step"] >= 0
    assert rows[0]["params"] == rows[1]["params"] < 20_000  # the small model was built
    for row in rows:
        # The train step holds at least the parameters and their momentum (float32).
        assert row["train_step_bytes"] > 2 * 4 * row["params"]
        assert 0 < row["infer_step_bytes"] < row["train_step_bytes"]
    # Activations grow with the batch.
    assert rows[1]["train_step_bytes"] > rows[0]["train_step_bytes"]


def test_assignments_parse_literals_and_explain_mistakes():
    parsed = torch_reference_benchmark.parse_assignments(
        ["dropout=0.0", "channels=(8, 16)", "graph=graph.ntu_rgb_d.Graph"], "--override"
    )
    assert parsed == {"dropout": 0.0, "channels": (8, 16), "graph": "graph.ntu_rgb_d.Graph"}
    with pytest.raises(SystemExit, match="write it as name=value"):
        torch_reference_benchmark.parse_assignments(["dropout"], "--override")


def test_allocator_flag_restarts_only_when_run_as_a_program():
    other = "hugepages" if allocator.in_use() != "hugepages" else "system"
    with pytest.raises(SystemExit, match="only when run as a program"):
        benchmark.main(["--models", "stgcn", "--allocator", other])
