"""The one base class for errors caused by what the user gave us.

Each module raises its own subclass (ConfigError, DatasetError, WeightsUnavailable,
RunStoreError, ...) with a one-line message naming the field or file and what to do. The
CLI turns any StudioError into exit status 2 and that line; anything else is a bug and
keeps its traceback. Pages show the message as one sentence.
"""

from __future__ import annotations


class StudioError(Exception):
    """Bad input (config, dataset, weights, run store): the message is for the user, one line."""


def _subclasses(cls) -> set[str]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub.__name__} | _subclasses(sub)
    return out


def user_error_inside(exc: BaseException) -> StudioError | None:
    """The StudioError a TensorFlow error carries, else None.

    Code that runs inside a tf.data step (`numpy_function`: the streamed decoder, the cache's row
    reads) cannot raise to its caller: TensorFlow wraps the error into an OpError whose message
    holds `<ErrorClass>: <message>` and a traceback. A file gone bad since the scan, or a cache
    file deleted mid-run, would otherwise end the run with 75 lines instead of its one sentence.
    """
    if isinstance(exc, StudioError):
        return exc
    names = _subclasses(StudioError) | {"StudioError"}
    text = getattr(exc, "message", None) or str(exc)
    for line in text.splitlines():
        line = line.split("}} ", 1)[-1].strip()  # TensorFlow prefixes the op: {{function_node ...}} Name: ...
        name, sep, message = line.partition(": ")
        if sep and name in names and message:
            return StudioError(message)
    return None
