"""Which `tf.distribute` strategy a run trains under, and what that changes for the run.

- `none`: TensorFlow's default strategy (one device; `scope()` is a no-op).
- `mirrored`: `tf.distribute.MirroredStrategy` over every local GPU; with no GPU but
  several logical CPU devices (`tf.config.set_logical_device_configuration`), over those,
  which is how the code path is tested on a CPU-only machine.
- `multi_worker`: `tf.distribute.MultiWorkerMirroredStrategy`, the machines described by
  the `TF_CONFIG` environment variable (the Keras/TensorFlow convention). Every worker
  runs the same command; only the chief writes the run store.

The strategy is created once per process and reused (MultiWorkerMirroredStrategy must be
created before TensorFlow runs anything else, and only once). Models, optimizers and
metrics are built in `Distribution.scope()`; Keras' `fit` then splits each global batch
(per-replica batch x replicas) across the replicas and all-reduces the gradients.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from engine.config import DISTRIBUTES, ConfigError
from engine.store.runs import RunRecord, RunStore

TF_CONFIG_EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'


@dataclass(frozen=True)
class Distribution:
    """The strategy of this process and what a run needs to know about it."""

    kind: str  # one of config.DISTRIBUTES
    strategy: object  # a tf.distribute.Strategy
    replicas: int  # replicas in sync, over all workers
    workers: int  # processes taking part (1 unless multi_worker)
    chief: bool  # this process writes the run store

    def scope(self):
        """The strategy's scope: variables created in it are mirrored on every replica."""
        return self.strategy.scope()

    def global_batch(self, per_replica: int) -> int:
        """Images per training step over all replicas: the per-replica batch x replicas."""
        return per_replica * self.replicas


_ACTIVE: dict[str, Distribution] = {}


def resolve(kind: str) -> Distribution:
    """The Distribution for `kind` ("none", "mirrored", "multi_worker"), created once per process.

    Raises:
        ConfigError: naming compute.distribute, when TF_CONFIG is missing or invalid, or
            `mirrored` finds nothing to mirror over.
    """
    if kind not in DISTRIBUTES:
        raise ConfigError(f"compute.distribute: must be one of {', '.join(DISTRIBUTES)}, got {kind!r}")
    if kind not in _ACTIVE:
        _ACTIVE[kind] = {"none": _default, "mirrored": _mirrored, "multi_worker": _multi_worker}[kind]()
    return _ACTIVE[kind]


def _default() -> Distribution:
    import tensorflow as tf

    return Distribution("none", tf.distribute.get_strategy(), 1, 1, True)


def mirror_devices() -> list[str]:
    """The devices `mirrored` uses: all local GPUs, else the logical CPUs when there are several."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return [d.name for d in gpus]
    cpus = tf.config.list_logical_devices("CPU")
    return [d.name for d in cpus] if len(cpus) > 1 else []


def _mirrored() -> Distribution:
    import tensorflow as tf

    devices = mirror_devices()
    if not devices:
        raise ConfigError(
            "compute.distribute: 'mirrored' found no GPU and a single CPU device, nothing to mirror over; "
            "use --distribute none (or install the GPU build of TensorFlow on a GPU machine)"
        )
    strategy = tf.distribute.MirroredStrategy(devices)
    return Distribution("mirrored", strategy, strategy.num_replicas_in_sync, 1, True)


def read_tf_config(raw: str | None = None) -> dict:
    """TF_CONFIG (from the environment unless `raw` is given), checked: a cluster with workers and this task.

    Raises:
        ConfigError: naming compute.distribute and TF_CONFIG, with an example to copy.
    """
    raw = os.environ.get("TF_CONFIG", "") if raw is None else raw
    where = "compute.distribute: 'multi_worker' needs TF_CONFIG"
    if not raw.strip():
        raise ConfigError(f"{where} describing the workers, set on every worker, e.g. TF_CONFIG='{TF_CONFIG_EXAMPLE}'")
    try:
        tf_config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where} to be JSON ({exc.msg} at character {exc.pos}), e.g. '{TF_CONFIG_EXAMPLE}'") from None
    cluster = tf_config.get("cluster") if isinstance(tf_config, dict) else None
    task = tf_config.get("task") if isinstance(tf_config, dict) else None
    if not isinstance(cluster, dict) or not any(isinstance(cluster.get(t), list) and cluster[t] for t in ("worker", "chief")):
        raise ConfigError(
            f"{where} with a 'cluster' listing 'worker' (and optionally 'chief') addresses, e.g. '{TF_CONFIG_EXAMPLE}'"
        )
    if not isinstance(task, dict) or task.get("type") not in ("worker", "chief") or not isinstance(task.get("index"), int):
        raise ConfigError(f"{where} with a 'task' of type 'worker' or 'chief' and an integer 'index', e.g. '{TF_CONFIG_EXAMPLE}'")
    members = cluster.get(task["type"]) or []
    if not 0 <= task["index"] < len(members):
        raise ConfigError(f"{where}: task index {task['index']} is not in cluster['{task['type']}'] ({len(members)} address(es))")
    return tf_config


def is_chief(tf_config: dict | None = None) -> bool:
    """True for the process that writes results: TF_CONFIG's chief, or worker 0 when there is no chief."""
    if tf_config is None:
        if not os.environ.get("TF_CONFIG", "").strip():
            return True  # a single process is its own chief
        tf_config = read_tf_config()
    task = tf_config.get("task") or {}
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and task.get("index") == 0 and not (tf_config.get("cluster") or {}).get("chief")


def _multi_worker() -> Distribution:

    tf_config = read_tf_config()
    cluster = tf_config["cluster"]
    workers = len(cluster.get("worker") or []) + len(cluster.get("chief") or [])
    strategy = _multi_worker_strategy_for_keras()
    return Distribution("multi_worker", strategy, strategy.num_replicas_in_sync, workers, is_chief(tf_config))


def _multi_worker_strategy_for_keras():
    """MultiWorkerMirroredStrategy whose `reduce` takes what Keras 3's `fit` gives it.

    Keras 3 (3.15) calls `strategy.reduce` with a nest (the first (x, y) batch, to build the
    model) and with axis=0 on scalar per-replica logs (loss, accuracy). MirroredStrategy
    copes; MultiWorkerMirroredStrategy's reduce takes one value ("TODO: support `value` being
    a nest" in TensorFlow) and fails on both ("Attempt to convert a value (PerReplica ...)",
    "Invalid reduction dimension 0 for input with 0 dimensions"; keras-team/keras#20585).
    Reducing leaf by leaf, scalars across replicas only, is what those calls mean.
    """
    import tensorflow as tf

    class KerasMultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            def one(v):
                t = v.values[0] if isinstance(v, tf.distribute.DistributedValues) else v
                return super(KerasMultiWorkerMirroredStrategy, self).reduce(reduce_op, v, None if t.shape.rank == 0 else axis)

            return tf.nest.map_structure(one, value)

    return KerasMultiWorkerMirroredStrategy()


def shard_by_data(ds):
    """Across workers, each takes its share of every global batch (the default tries files first, and
    our streams are in-memory gathers, so it would warn and fall back to this anyway)."""
    import tensorflow as tf

    opts = tf.data.Options()
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(opts)


@functools.lru_cache(maxsize=1)
def visible_device_count() -> int:
    """Devices `mirrored` would train on in a new job process: the GPUs, else 1 (the CPU).

    Reads the physical device list only, so the calling process (the dashboard) does not
    initialise TensorFlow's runtime or claim GPU memory.
    """
    import tensorflow as tf

    return max(len(tf.config.list_physical_devices("GPU")), 1)


# --- the run store of a non-chief worker ----------------------------------------------------
_SCRATCH: list[Path] = []


def _scratch_dir() -> Path:
    """A private folder for what a non-chief worker would store, removed when the process exits.

    One per process, not per run: with `--approach all`, fine-tuning continues from the
    frozen run this worker has just trained (the same weights as the chief's).
    """
    if not _SCRATCH:
        _SCRATCH.append(Path(tempfile.mkdtemp(prefix="tls-worker-runs-")))
        atexit.register(remove_scratch)
    return _SCRATCH[0]


def remove_scratch() -> None:
    """Deletes the non-chief scratch store, if this process made one."""
    while _SCRATCH:
        shutil.rmtree(_SCRATCH.pop(), ignore_errors=True)


class WorkerRunStore(RunStore):
    """A non-chief worker's store: writes go to a scratch folder, reads fall back to the shared store.

    Every worker runs the same code (a `model.save` included), but only the chief's results
    are kept. A run this worker did not write (`--from-run`) is read from the shared store,
    so the run store must be visible to every worker for that.
    """

    def __init__(self, shared_root: str | os.PathLike | None = None):
        self.shared = RunStore(shared_root)
        super().__init__(_scratch_dir())

    def load(self, run_id: str) -> RunRecord:
        return RunStore.load(self, run_id) if (self.root / run_id).is_dir() else self.shared.load(run_id)

    def load_model(self, run_id: str):
        return RunStore.load_model(self, run_id) if (self.root / run_id).is_dir() else self.shared.load_model(run_id)


def run_store(runs_dir: str | os.PathLike | None, dist: Distribution) -> RunStore:
    """The store a run writes to: the real one on the chief, a scratch one on other workers."""
    return RunStore(runs_dir) if dist.chief else WorkerRunStore(runs_dir)
