"""``experiments.speed_table``: the side-by-side table and its argument checks (no PyTorch)."""

import sys

import pytest

from experiments import speed_table


def _row(model, train, infer):
    return {"model": model, "train_clips_per_s": train, "infer_clips_per_s": infer}


def test_table_has_one_row_per_model_with_ratios():
    text = speed_table.markdown(
        [
            (_row("stgcn", 20.0, 80.0), _row("stgcn", 10.0, 100.0)),
            (_row("agcn", 5, 5), _row("agcn", 5, 5)),
        ]
    )
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[2] == "| stgcn | 20.0 | 10.0 | 2.00x | 80.0 | 100.0 | 0.80x |"
    assert lines[3].endswith("| 1.00x |")


def test_best_of_repeats_is_kept_per_column():
    best = speed_table._best([_row("m", 3.0, 9.0), _row("m", 4.0, 8.0)])
    assert (best["train_clips_per_s"], best["infer_clips_per_s"]) == (4.0, 9.0)


def test_missing_checkout_and_unknown_model_are_explained(tmp_path, capsys):
    with pytest.raises(SystemExit, match="No checkout for \\['msg3d'\\]"):
        speed_table.main(["--torch-python", "python", "--models", "msg3d"])
    with pytest.raises(SystemExit):
        speed_table.main(["--torch-python", "python", "--models", "msg3d", "--source",
                          f"msg3d={tmp_path}", "--allocator", "mimalloc"])  # fmt: skip
    assert "invalid choice: 'mimalloc'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="Unknown model 'resnet'"):
        speed_table.main(
            ["--torch-python", "python", "--models", "resnet", "--sources", str(tmp_path)]
        )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc huge pages: Linux")
def test_failed_reference_run_is_reported_in_its_row_with_keep_going(tmp_path, capsys):
    # This interpreter has no PyTorch: the reference script exits with a message saying so.
    argv = ["--torch-python", sys.executable, "--models", "stgcn", "--source",
            f"stgcn={tmp_path}", "--batch", "2", "--frames", "8", "--steps", "1",
            "--repeats", "1", "--override", "channels=(8, 16)",
            "--override", "strides=(1, 2)"]  # fmt: skip
    with pytest.raises(SystemExit, match="failed"):
        speed_table.main(argv)
    capsys.readouterr()
    # Both sides run as programs of their own, here under glibc with huge pages.
    assert speed_table.main([*argv, "--keep-going", "--allocator", "hugepages"]) == 0
    captured = capsys.readouterr()
    assert "| stgcn |" in captured.out and "| failed |" in captured.out
    assert "host allocator (both sides): hugepages" in captured.out
    assert "PyTorch stgcn:" in captured.err and "has no PyTorch" in captured.err
