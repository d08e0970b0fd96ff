"""End-to-end baseline: a registry model on the authors' 90-frame preset (faithful).

    python -m experiments.emotion --config=experiments/configs/emotion_authors90.py \\
        --workdir=runs/emotion_authors90 --config.data.manual_dir=/path/to/SMG

Each instance becomes one array, its first 90 frames (world xyz, zero-padded,
nothing else), as the authors' ``smg_gendata_emotion.py`` writes it; ST-GCN
with the authors' classification recipe reads it. ``:synthetic`` sizes it for
a CPU on a small synthetic SMG, ``:tiny`` for the tests.
"""

from experiments.configs import emotion_base


def get_config(arg: str | None = None):
    config = emotion_base.get_config("stgcn")
    config.method = "end_to_end"
    config.window.mode = "first"
    config.window.length = 90
    # The identity preset: 90 frames in, the same 90 out (see smg_jax/emotion/end_to_end.py).
    config.data.preset = "resample"
    config.data.num_frames = 90
    config.data.fill_missing = False
    config.data.center_joint = -1
    config.model.dropout = 0.1
    config.model.strategy = "spatial"
    config.model.edge_importance = True
    config = emotion_base.shrink(config, arg)
    if arg == "synthetic":
        config.train.epochs = 30
        config.train.batch_size = 16
    elif arg == "tiny":
        config.data.num_frames = config.window.length = 32
        config.train.epochs = 2
        config.train.batch_size = 16
    return config
