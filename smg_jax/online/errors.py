"""The online room's exception type."""


class OnlineError(ValueError):
    """Bad input to online recognition: a malformed option, config or recognizer output.

    The message names the recording, field or file at fault and says how to fix it.
    Malformed segments and recordings raise ``smg_jax.data.recordings.RecordingError``.
    """
