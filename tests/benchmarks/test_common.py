"""The recorded command and result file of every benchmark (benchmarks.common), and the
run list of ``make bench``."""

from __future__ import annotations

import json

import pytest

from benchmarks import common
from benchmarks.run_all import RUNS


def _parser():
    parser = common.argument_parser("demo_bench", "A benchmark.\n\nMore text.")
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--neo4j-password", default="")
    parser.add_argument("--label", default="x")
    return parser


def test_command_keeps_every_flag_as_given_and_hides_secrets():
    argv = ["--rate", "500", "--label", "two words", "--neo4j-password", "s3cret",
            "--neo4j-password=other"]
    assert common.command("python -m benchmarks.demo_bench", argv) == (
        "python -m benchmarks.demo_bench --rate 500 --label 'two words' "
        "--neo4j-password '***' '--neo4j-password=***'")


def test_options_cannot_be_abbreviated():
    with pytest.raises(SystemExit):
        _parser().parse_args(["--ra", "500"])


def test_save_writes_the_output_file_with_command_and_parameters(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    parser = _parser()
    argv = ["--rate", "500", "--output", "demo_bench_500", "--neo4j-password", "pw"]
    args = parser.parse_args(argv)
    path = common.save(parser, args, argv, {"p99_ms": 2.0})
    assert path == tmp_path / "demo_bench_500.json"
    saved = json.loads(path.read_text())
    assert saved["benchmark"] == "demo_bench"
    assert saved["command"] == ("python -m benchmarks.demo_bench --rate 500 --output "
                                "demo_bench_500 --neo4j-password '***'")
    assert saved["parameters"] == {"label": "x", "neo4j_password": "***",
                                   "output": "demo_bench_500", "rate": 500.0}
    assert saved["p99_ms"] == 2.0
    assert "pw" not in path.read_text()
    assert not list(tmp_path.glob("*.tmp"))


def test_save_refuses_a_path_as_output(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    parser = _parser()
    args = parser.parse_args(["--output", "../elsewhere"])
    with pytest.raises(SystemExit):
        common.save(parser, args, [], {})


def test_make_bench_writes_one_file_per_run():
    outputs = [argv[argv.index("--output") + 1] if "--output" in argv
               else module.__name__.rsplit(".", 1)[1] for module, argv in RUNS]
    assert len(outputs) == len(set(outputs))


def test_make_bench_reruns_the_command_of_every_committed_result():
    recorded = {json.loads(p.read_text())["command"]
                for p in common.RESULTS.glob("*.json")}
    planned = {common.command(f"python -m {module.__name__}", argv) for module, argv in RUNS}
    assert recorded == planned
