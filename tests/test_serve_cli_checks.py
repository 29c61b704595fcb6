"""`dsnet serve` checks its address before loading the model, and says what it exposes; `predict` says
where its precision comes from (issue [2 of 5], item 10)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import dsnet.cli.serve as cli_serve
from dsnet.cli import main

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")

IMAGE = Path(__file__).resolve().parents[1] / "demo" / "camvid-mini" / "images" / "val" / "0016E5_07959.jpg"


@pytest.fixture
def no_model(monkeypatch):
    """Loading the model is a failure here: the address checks must come first."""

    def refuse(args, options=None):
        raise AssertionError("the model was loaded before the address was checked")

    monkeypatch.setattr(cli_serve, "predictor_from_args", refuse)


@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_an_impossible_port_is_one_line_before_the_model_loads(port, no_model, capsys):
    assert main(["serve", "dsnet_head64", "--weights", "camvid-cpu60min", "--port", port]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"dsnet serve: error: --port {port}: a port is a number from 1 to 65535"]


def test_a_port_in_use_is_exit_2_with_one_line(no_model, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "dsnet_head64", "--weights", "camvid-cpu60min", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--port {port}: cannot listen there" in err[0]


def test_listening_beyond_this_machine_warns_that_there_is_no_authentication(monkeypatch, capsys):
    class Stop(Exception):
        pass

    def stop(args, options=None):
        raise Stop

    monkeypatch.setattr(cli_serve, "predictor_from_args", stop)
    with pytest.raises(Stop):
        cli_serve.cmd_serve(_serve_args(host="0.0.0.0"))
    assert "no authentication" in capsys.readouterr().out
    with pytest.raises(Stop):
        cli_serve.cmd_serve(_serve_args(host="127.0.0.1"))
    assert "authentication" not in capsys.readouterr().out


def _serve_args(host: str):
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli_serve.add_serve_command(sub)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return parser.parse_args(
        ["serve", "dsnet_head64", "--weights", "camvid-cpu60min", "--host", host, "--port", str(port)]
    )


def test_predict_says_its_precision_is_the_default_when_nothing_was_asked(tmp_path, capsys):
    args = ["predict", "dsnet_head64", "--weights", "camvid-cpu60min", "--device", "cpu", str(IMAGE)]
    assert main([*args, "-o", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "torch backend, fp32 (the default; --precision auto picks bf16" in out and "asked for" not in out
    assert main([*args, "-o", str(tmp_path / "b"), "--precision", "fp32"]) == 0
    assert "torch backend, fp32 (asked for)" in capsys.readouterr().out
