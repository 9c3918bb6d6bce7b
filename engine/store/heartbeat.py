"""Who runs a run, and whether it still does: PID, host and a heartbeat file in the run folder.

A run killed with SIGKILL, by the OOM killer or a power cut never writes its final state,
so its metrics.json says "running" forever. So the training process also keeps
`heartbeat.json` (pid, host, boot, process start time, last beat), refreshed by a
background thread every `HEARTBEAT_EVERY_S` seconds for as long as it runs, including long
feature passes where no epoch ends. A reader then decides, without writing anything:

- same machine (host, boot and PID namespace): the run is alive iff its PID exists, is not
  a zombie, and started when the recorded one did (PIDs are reused);
- another machine (a shared disk): alive iff the last beat is younger than
  `STALE_AFTER_S`, a generous margin for clock skew and busy machines.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

HEARTBEAT_FILE = "heartbeat.json"
HEARTBEAT_EVERY_S = 10.0  # how often a running process refreshes its beat
STALE_AFTER_S = 300.0  # a beat older than this, from another machine, means the run is gone


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state letter, start time in clock ticks since boot) from /proc (Linux), else None."""
    raw = _read(f"/proc/{pid}/stat")
    if not raw or ")" not in raw:
        return None
    fields = raw.rsplit(")", 1)[1].split()  # the command name may contain spaces and ')'
    return (fields[0], fields[19]) if len(fields) > 19 else None


def identity() -> dict:
    """What identifies this process to readers: pid, host, boot id, PID namespace, start time."""
    pid = os.getpid()
    stat = _proc_stat(pid)
    ns = None
    try:
        ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pass
    return {
        "pid": pid,
        "host": socket.gethostname(),
        "boot_id": _read("/proc/sys/kernel/random/boot_id"),
        "pid_ns": ns,
        "process_start": stat[1] if stat else None,
    }


def pid_running(pid: int, process_start: str | None = None) -> bool:
    """True if `pid` is a live process on this machine (and the same one, when its start time is known)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    stat = _proc_stat(pid)
    if stat is None:
        return True  # no /proc: existence is all we can tell
    state, start = stat
    if state in ("Z", "X"):  # exited, not yet reaped by its parent
        return False
    return process_start is None or start == process_start


def why_gone(info: dict, *, now: float | None = None, fallback_beat: float | None = None) -> str:
    """'' while the owner of `info` (a heartbeat.json) may still be running, else why it is not.

    `fallback_beat` (e.g. the folder's last write) stands in for the beat of runs written
    before heartbeats existed.
    """
    now = time.time() if now is None else now
    here = identity()
    same_machine = _same_machine(info, here)
    if same_machine and info.get("boot_id") and here["boot_id"] and info["boot_id"] != here["boot_id"]:
        return f"{info['host']} restarted since it ran"
    if same_machine and info.get("boot_id") == here["boot_id"]:
        if pid_running(info["pid"], info.get("process_start")):
            return ""
        return f"its process (pid {info['pid']} on {info['host']}) ended without recording a final state"
    beat = info.get("heartbeat", fallback_beat)
    if not isinstance(beat, (int, float)):
        return ""  # nothing to judge by: never call a run dead on no evidence
    age = now - beat
    if age <= STALE_AFTER_S:
        return ""
    where = f" from {info['host']}" if info.get("host") else ""
    return f"no heartbeat{where} for {_duration(age)}"


def _same_machine(info: dict, here: dict) -> bool:
    return info.get("host") == here["host"] and isinstance(info.get("pid"), int) and info.get("pid_ns") == here["pid_ns"]


def live_local_pid(info: dict) -> int | None:
    """The owner's pid when it is a live process on this machine (same boot, same process), else None."""
    here = identity()
    if not _same_machine(info, here) or info.get("boot_id") != here["boot_id"]:
        return None
    return info["pid"] if pid_running(info["pid"], info.get("process_start")) else None


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Heartbeat:
    """Keeps `run_dir/heartbeat.json` fresh from a daemon thread until `stop()` (or the process dies)."""

    def __init__(self, run_dir: str | os.PathLike, every: float | None = None):
        self.path = Path(run_dir) / HEARTBEAT_FILE
        self.every = every or HEARTBEAT_EVERY_S
        self.info = {**identity(), "started": time.time(), "every_s": self.every}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"tls-heartbeat-{self.path.parent.name}", daemon=True)

    def start(self) -> "Heartbeat":
        self.beat()  # the first beat is written before training starts
        self._thread.start()
        return self

    def beat(self) -> bool:
        """Writes the beat (temp file + rename). False when the run folder is gone (deleted run)."""
        self.info["heartbeat"] = time.time()
        try:
            # Not runs.atomic_write_json: that creates missing folders, and a beat must never
            # bring back a run folder someone deleted.
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        except FileNotFoundError:
            return False
        except OSError:
            return True  # e.g. a full disk: try again next time, training goes on
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(self.info, fh)
            os.replace(tmp, self.path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            if not self.beat():
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()
