from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dsnet.cli import main


def test_info_prints_the_paper_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "dsnet_head128", "--size", "1024", "2048"]) == 0
    out = capsys.readouterr().out
    assert "6,755,539" in out and "226.62" in out and "241.97" in out


def test_info_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "dsnet_head64", "--size", "720", "1280", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == 6_551_315 and round(data["paper_gflops"], 1) == 91.6


def test_list_shows_every_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--size", "64", "64"]) == 0
    out = capsys.readouterr().out
    for name in ("dsnet_head64", "dsnet_head128", "dsnet_head256", "dsnet_base"):
        assert name in out


def test_errors_are_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "dsnet_head12"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'dsnet_head12'" in err
    assert main(["info", "dsnet_head64", "--size", "100", "100"]) == 2
    assert "divisible by 8" in capsys.readouterr().err


def test_console_entry_point_via_python_m() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dsnet", "info", "dsnet_head64", "--size", "64", "64", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["params"] == 6_551_315
