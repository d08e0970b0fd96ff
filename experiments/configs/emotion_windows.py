"""End-to-end over the whole instance: windows every ``stride`` frames, mean of window logits.

    python -m experiments.emotion --config=experiments/configs/emotion_windows.py \\
        --workdir=runs/emotion_windows --config.data.manual_dir=/path/to/SMG

Every window of 90 frames (3 s) starting every 45 frames, the last one ending
at the instance's end, is centred on the spine of its first frame and
resampled to 32 frames; the model is trained on windows labelled with their
instance's state, and an instance's logits are the mean of its windows'.
``:synthetic`` sizes it for a CPU on a small synthetic SMG, ``:tiny`` for the tests.
"""

from experiments.configs import emotion_base


def get_config(arg: str | None = None):
    config = emotion_base.get_config("stgcn")
    config.method = "end_to_end"
    config.window.mode = "cover"
    config.window.length = 90
    config.window.stride = 45
    config.data.preset = "centered"
    config.data.num_frames = 32
    config.data.fill_missing = None  # the preset's own (repair lost joints)
    config.data.center_joint = None  # the preset's own (spine mid, first frame)
    config.model.dropout = 0.1
    config.train.epochs = 10
    config.train.batch_size = 64
    config.eval.batch_size = 128
    config.schedule.milestones = (6, 8)
    config = emotion_base.shrink(config, arg)
    if arg == "synthetic":
        config.window.stride = 90  # non-overlapping: about 10 windows per instance
        config.train.epochs = 5
        config.train.batch_size = 32
    elif arg == "tiny":
        config.window.length = 64
        config.window.stride = 64
        config.data.num_frames = 16
        config.train.epochs = 1
        config.train.batch_size = 16
    return config
