"""`bench --backbones` (engine/training/bench_backbones.py): docs/results.md's speed column, and the rows that hold it."""

import json
import re
from pathlib import Path

from engine import cli
from engine.models.backbones import BACKBONES

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results.md"  # the backbone table lives there (README links it)


def test_bench_backbones_times_each_named_row_at_its_default_size(tmp_path, capsys):
    out = tmp_path / "speeds.json"
    assert cli.main(["bench", "--backbones", "mobilenet_v3_small", "--raw-seconds", "0.05", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == report
    (row,) = report["rows"]
    assert row["backbone"] == "mobilenet_v3_small" and row["image_size"] == 224 and row["images_per_s"] > 0
    assert 0.9e6 < row["params"] < 1.0e6  # the no-top base's own count
    assert report["table"].splitlines()[2].startswith("| `mobilenet_v3_small` | 224 px | 0.9 M |")


def test_an_unknown_backbone_is_refused_in_one_line(capsys):
    assert cli.main(["bench", "--backbones", "mobilenet_v2,resnet9000"]) == 2
    assert "unknown backbone 'resnet9000'" in capsys.readouterr().err


def test_the_results_table_shows_each_rows_measured_speed():
    shown = dict(re.findall(r"^\| `(\w+)` \| \d+ / \d+ px \|[^|]+\|[^|]+\| ([0-9.]+) \|", RESULTS.read_text(), re.M))
    assert set(shown) == set(BACKBONES)
    for name, spec in BACKBONES.items():  # the sidebar's figure (the row's) is the table's
        assert float(shown[name]) == spec.cpu_images_per_s, name
