"""`python -m engine job SPEC`: a typed job spec made into the command's own flags; a refusal written where the runner reads it."""

import json

import pytest

from engine import cli
from engine.cli.job import argv_for
from engine.config import ConfigError
from engine.store.jobs import JobRunner


def test_options_become_the_commands_own_flags():
    argv = argv_for(
        "run",
        {
            "data": "/d",
            "approach": "frozen",
            "run_id": "r1",
            "quiet": True,
            "augmentation.enabled": False,
            "sweep_point": '{"fit.epochs": 2}',
            "seeds": 2,
        },
    )
    assert argv == [
        "run",
        "--data",
        "/d",
        "--approach",
        "frozen",
        "--run-id",
        "r1",
        "--quiet",
        "--no-augmentation",
        "--sweep-point",
        '{"fit.epochs": 2}',
        "--seeds",
        "2",
    ]
    assert argv_for("predict", {"run": ["a", "b"], "images": ["x.png", "y.png"], "tta": True}) == [
        "predict",
        "--run",
        "a",
        "--run",
        "b",
        "--tta",
        "x.png",
        "y.png",
    ]
    assert argv_for("export", {"run": "r1", "format": "keras", "out": "/o", "zip": True}) == [
        "export",
        "--format",
        "keras",
        "--out",
        "/o",
        "--zip",
        "r1",
    ]
    assert argv_for("scan", {"data": "/d", "json": False}) == ["scan", "/d"]  # a switch off is left out


def test_a_spec_can_say_only_what_its_command_accepts():
    with pytest.raises(ConfigError, match="job spec: scan has no option 'epochs'"):
        argv_for("scan", {"data": "/d", "epochs": 3})
    with pytest.raises(ConfigError, match="job spec: no command 'format-disk'"):
        argv_for("format-disk", {})


def test_a_refusal_is_one_line_and_the_error_file_the_runner_reads(tmp_path, capsys):
    spec = tmp_path / "job.spec.json"
    spec.write_text(
        json.dumps({"command": "scan", "options": {"data": str(tmp_path / "gone")}, "error_file": str(tmp_path / "e.json")})
    )
    assert cli.main(["job", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {tmp_path / 'gone'}: folder not found")
    assert json.loads((tmp_path / "e.json").read_text()) == {"error": err.strip().removeprefix("error: ")}


@pytest.mark.slow  # one CLI process
def test_the_runner_reads_a_jobs_refusal_from_its_error_file_and_leaves_no_job_files(tmp_path):
    runner = JobRunner(runs_dir=tmp_path / "runs")
    from tests.conftest import tiny_config

    job = runner.submit_tool("lr-find", tiny_config("frozen", str(tmp_path / "no-such-dataset")))
    runner.wait(job.id, timeout=300)
    assert runner.get(job.id).error.endswith(
        "no-such-dataset: folder not found; give the path of a folder with one sub-folder per class"
    )
    assert runner.job_error(job.id) == runner.get(job.id).error
    assert list((tmp_path / "runs" / ".jobs").iterdir()) == []  # spec, config and error file gone with the job


def test_an_export_of_an_unknown_run_is_refused_when_queued(tmp_path):
    from engine.store.runs import RunNotFound

    with pytest.raises(RunNotFound):
        JobRunner(runs_dir=tmp_path / "runs").submit_export("no-such-run", "keras")
