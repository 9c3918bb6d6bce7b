"""Store: the run store (atomic folders, states, damaged folders), status, heartbeat, the job runner, output-path checks.

Imports data and models only (models: a stored model's custom layer must be registered to load it)."""
