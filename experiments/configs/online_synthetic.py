"""Both recognizers on a synthetic SMG, sized for a 2-core CPU (about a quarter of an hour).

    python -m experiments.online --config=experiments/configs/online_synthetic.py \\
        --workdir=runs/online_synthetic

Writes a synthetic SMG (``small`` scale) to ``data/synthetic_raw_small`` when it is
empty. The authors' recognizer keeps all their choices (network, optimizer,
callbacks, HMM) but trains at most 6 epochs; the detector is a narrow
two-block ST-GCN on 32-frame windows (joint and motion streams). Numbers on
synthetic data are not SMG results.
"""

from __future__ import annotations

from experiments.configs import online_base


def get_config():
    config = online_base.get_config()
    config.data.manual_dir = "data/synthetic_raw_small"
    config.data.data_dir = "data/tfds_small"
    config.data.synthetic_scale = "small"
    config.authors.train.epochs = 6
    config.detector.model.update({"channels": (16, 32), "strides": (1, 2), "dropout": 0.1})
    config.detector.data.update({"num_frames": 32, "window": 32, "stride": 8})
    config.detector.train.update({"epochs": 3, "batch_size": 16})
    return config
