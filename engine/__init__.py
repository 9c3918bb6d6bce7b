"""Transfer Learning Studio engine: datasets, backbones, the three approaches, run store, CLI.

Never imports streamlit; the dashboard and the CLI both call into this package.

TensorFlow's C++ start-up lines stay off a user's terminal and a job's log headline. Its own
logging obeys TF_CPP_MIN_LOG_LEVEL (set here, before anything imports it), but absl's
"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
and the `I0000 ... port.cc] oneDNN custom operations are on` line (printed whenever oneDNN
is on, e.g. on AVX-512 machines) ignore it, and both are printed while `import tensorflow`
runs (twice: two of its libraries each log once). So the first import of TensorFlow, by
whichever module (`keras` imports it too), runs with file descriptor 2 read through a pipe
that forwards every other line at once and drops those (`_QuietTensorFlowImport`).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's own C++ INFO and WARNING lines off stderr

__version__ = "0.1.0"


def _startup_noise(line: bytes) -> bool:
    """A start-up line of TensorFlow's C++ libraries: absl's pre-init notice, an absl INFO/WARNING line
    (`I0000 00:00:1796616842.979843    9367 port.cc:153] ...`), or the tail of cpu_feature_guard's."""
    text = line.decode("utf-8", "replace").strip()
    if text.startswith("WARNING: All log messages before absl::InitializeLog()"):
        return True
    if text[:1] in ("I", "W") and text[1:5].isdigit() and "] " in text and ".cc:" in text.split("] ", 1)[0]:
        return True
    return text.startswith("To enable the following instructions:") and "rebuild TensorFlow" in text


def _forward(read_fd: int, out_fd: int) -> None:
    """Copies lines from the pipe to the real stderr as they come, leaving out start-up noise."""
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not _startup_noise(line))
            _write_all(out_fd, kept)
        if not _startup_noise(pending):
            _write_all(out_fd, pending)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def quiet_fd2(run):
    """Calls `run()` with file descriptor 2 filtered through `_startup_noise` (real time, line by line:
    a crash while importing still shows what it printed). Without a usable fd 2, just calls it."""
    import threading

    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read_fd, write_fd = os.pipe()
    except (OSError, ValueError, AttributeError):
        return run()
    forwarder = threading.Thread(target=_forward, args=(read_fd, saved), name="tls-tf-startup-log", daemon=True)
    forwarder.start()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    try:
        return run()
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 2)  # the pipe's last writer closed: the forwarder reads to its end and stops
        forwarder.join(timeout=10)
        os.close(saved)


class _QuietTensorFlowImport:
    """A meta path finder that wraps the first `import tensorflow` in `quiet_fd2`, then steps aside."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader:
    """The real loader of `tensorflow`, its module executed under `quiet_fd2`."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = self._loader  # what TensorFlow and importlib.resources see afterwards
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        return quiet_fd2(lambda: self._loader.exec_module(module))

    def __getattr__(self, name):
        return getattr(self._loader, name)


if "tensorflow" not in sys.modules:
    sys.meta_path.insert(0, _QuietTensorFlowImport())
