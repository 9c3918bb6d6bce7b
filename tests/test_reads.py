"""engine/data/reads.py: the one read gate. Regular files only, bounded before reading, never blocking on a FIFO."""

import os
import threading

import pytest

from engine.data import images, reads
from engine.data.reads import FileRefused, NotRegularFile, read_regular_file


def within(seconds: float, fn):
    """fn() in a thread; fails (instead of hanging the suite) when it has not returned in `seconds`."""
    out = {}

    def call():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            out["error"] = exc

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"{fn} blocked for {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_a_regular_file_is_read_up_to_its_limit_and_refused_one_byte_over(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"x" * 100)
    assert read_regular_file(f, 100) == b"x" * 100
    with pytest.raises(FileRefused, match=rf"^{f}: is 100 bytes, over the limit of 99 bytes$"):
        read_regular_file(f, 99)


@pytest.mark.parametrize("kind", ["pipe", "device", "folder"])
def test_what_is_not_a_regular_file_is_refused_with_what_it_is_without_blocking(kind, tmp_path):
    path = {"pipe": tmp_path / "pipe.png", "device": "/dev/zero", "folder": tmp_path}[kind]
    if kind == "pipe":
        os.mkfifo(path)  # no writer: a blocking open would wait forever
    with pytest.raises(NotRegularFile) as err:
        within(10, lambda: read_regular_file(path, 1000, name="the file"))
    assert str(err.value) == f"the file: is a {kind}, not a regular file" and err.value.kind == f"a {kind}"


def test_a_file_swapped_for_a_fifo_after_the_check_is_caught_on_the_descriptor(tmp_path, monkeypatch):
    """The stat before opening said 'regular file'; the opened descriptor is a FIFO: fstat refuses it, nothing blocks."""
    regular, fifo = tmp_path / "a.png", tmp_path / "pipe.png"
    regular.write_bytes(b"x")
    os.mkfifo(fifo)
    real_stat = os.stat
    monkeypatch.setattr(reads.os, "stat", lambda p, **kw: real_stat(regular) if str(p) == str(fifo) else real_stat(p, **kw))
    with pytest.raises(NotRegularFile, match="is a pipe, not a regular file"):
        within(10, lambda: read_regular_file(fifo, 1000))


def test_a_file_growing_past_the_limit_while_read_is_refused_after_limit_plus_one_bytes(tmp_path, monkeypatch):
    f = tmp_path / "grows.bin"
    f.write_bytes(b"x" * 5000)
    real_fstat, real_read, asked = os.fstat, os.read, []

    class Small:  # what fstat said when the file was still small
        def __init__(self, st):
            self.st_mode, self.st_size = st.st_mode, 10

    monkeypatch.setattr(reads.os, "stat", lambda p, **kw: Small(os.lstat(p)))
    monkeypatch.setattr(reads.os, "fstat", lambda fd: Small(real_fstat(fd)))
    monkeypatch.setattr(reads.os, "read", lambda fd, n: asked.append(n) or real_read(fd, n))
    with pytest.raises(FileRefused, match="grew past the limit of 100 bytes"):
        read_regular_file(f, 100)
    assert sum(asked) == 101  # never more than limit + 1 bytes


def test_missing_files_and_links_when_links_are_not_followed(tmp_path):
    with pytest.raises(FileRefused, match=r"gone.png: cannot read \(No such file"):
        read_regular_file(tmp_path / "gone.png", 10)
    target, link = tmp_path / "secret.txt", tmp_path / "link.png"
    target.write_text("secret")
    link.symlink_to(target)
    assert read_regular_file(link, 10) == b"secret"  # followed by default (the decoder reads linked datasets)
    with pytest.raises(FileRefused, match="is a link"):
        read_regular_file(link, 10, follow_links=False)


def test_the_decoder_reads_through_the_same_gate_and_limit(tmp_path, monkeypatch):
    assert images.MAX_IMAGE_BYTES is reads.MAX_IMAGE_BYTES
    assert within(10, lambda: images.check_image("/dev/zero")) == "not a regular file"
    seen = []
    real = reads.read_regular_file
    monkeypatch.setattr(images, "read_regular_file", lambda *a, **kw: seen.append(a) or real(*a, **kw))
    images.check_image(tmp_path / "gone.png")
    assert seen and seen[0][1] == reads.MAX_IMAGE_BYTES
