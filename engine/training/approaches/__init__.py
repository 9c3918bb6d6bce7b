"""The three transfer-learning approaches, each `run(config, data, progress, should_stop, **store)`."""

from engine.training.approaches import feature_extraction, fine_tuning, frozen
from engine.training.lifecycle import RunResult
from engine.training.prepared import PreparedData, prepare_data

RUNNERS = {
    "feature_extraction": feature_extraction.run,
    "frozen": frozen.run,
    "fine_tuning": fine_tuning.run,
}

__all__ = ["RUNNERS", "PreparedData", "RunResult", "prepare_data"]
