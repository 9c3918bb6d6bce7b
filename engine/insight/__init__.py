"""Insight: reading models and runs: evaluation, error analysis, Grad-CAM, charts, inference, export, presets.

Below training (a run scores itself with evaluation and writes predictions with analysis); imports data, models, store."""
