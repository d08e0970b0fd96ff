"""A smoke test of the whole online command on a tiny synthetic SMG (well under a minute on CPU).

    python -m experiments.online --config=experiments/configs/online_tiny.py \\
        --workdir=/tmp/online_tiny

Every stage runs (training both networks with checkpoints, decoding, tables,
CSV files, timelines) with networks and step counts cut to the bone.
"""

from __future__ import annotations

from experiments.configs import online_base


def get_config():
    config = online_base.get_config()
    config.data.manual_dir = "/tmp/smg_online_tiny/raw"
    config.data.data_dir = "/tmp/smg_online_tiny/tfds"
    config.data.synthetic_scale = "tiny"
    config.authors.hmm.rest_samples = 2000
    config.authors.mlp.hidden = (64, 64)
    config.authors.train.epochs = 2
    config.authors.train.batch_size = 64
    config.authors.train.log_every_steps = 10
    config.authors.decode_batch_size = 512
    config.detector.model.update({"channels": (8, 16), "strides": (1, 2), "dropout": 0.0})
    config.detector.data.update({"num_frames": 16, "window": 32, "stride": 16, "infer_stride": 8})
    config.detector.train.update(
        {"epochs": 1, "batch_size": 32, "max_steps": 12, "log_every_steps": 4}
    )
    config.eval.progress_bar = False
    return config
