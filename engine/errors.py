"""The one base class for errors caused by what the user gave us.

Each module raises its own subclass (ConfigError, DatasetError, WeightsUnavailable,
RunStoreError, ...) with a one-line message naming the field or file and what to do. The
CLI turns any StudioError into exit status 2 and that line; anything else is a bug and
keeps its traceback. Pages show the message as one sentence.
"""

from __future__ import annotations


class StudioError(Exception):
    """Bad input (config, dataset, weights, run store): the message is for the user, one line."""
