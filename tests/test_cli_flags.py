"""The command line declares each flag once (issue [3 of 5]): a flag several commands take is a function in
``dsnet.cli.flags``, so its name, type and checks cannot drift apart; every command that computes takes
``--threads``, which sets torch's thread count before the command runs."""

from __future__ import annotations

import argparse
import ast
import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from dsnet.cli import build_parser, main
from dsnet.cli.ablate import _parse_shard
from dsnet.errors import ConfigError
from dsnet.torchrun import Shard, is_main_process, local_rank_from_env, shard_from_env

CLI = Path(__file__).resolve().parents[1] / "src" / "dsnet" / "cli"
SHARED_FLAGS = (
    "--device",
    "--threads",
    "--overwrite",
    "-o",
    "--out",
    "--num-classes",
    "--weights",
    "--backend",
    "--precision",
    "--calib",
    "--calib-count",
    "--size",
    "--json",
    "--batch-size",
    "--dataset",
    "--work-dir",
    "--resume",
)
COMPUTING_COMMANDS = ("train", "pretrain", "ablate", "eval", "predict", "bench", "export", "serve", "erf")


def _declared_flags() -> dict[str, list[str]]:
    """Every option string written in an ``add_argument(...)`` call of dsnet.cli, with the files naming it."""
    found: dict[str, list[str]] = {}
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("-"):
                        found.setdefault(arg.value, []).append(path.name)
    return found


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def _flags_of(command: argparse.ArgumentParser) -> set[str]:
    return {s for action in command._actions for s in action.option_strings}


def test_every_flag_is_declared_once() -> None:
    declared = _declared_flags()
    assert len(declared) > 40  # the scan sees the command line
    twice = {flag: files for flag, files in declared.items() if len(files) != 1}
    assert not twice, f"flags declared more than once: {twice}"


def test_shared_flags_live_in_the_flags_module_and_are_shared() -> None:
    declared = _declared_flags()
    assert {flag: declared.get(flag) for flag in SHARED_FLAGS} == {flag: ["flags.py"] for flag in SHARED_FLAGS}
    uses = Counter(flag for command in _commands().values() for flag in _flags_of(command))
    assert all(uses[flag] >= 2 for flag in SHARED_FLAGS), {flag: uses[flag] for flag in SHARED_FLAGS}
    assert uses["--device"] >= 8 and uses["--num-classes"] >= 8 and uses["--overwrite"] >= 8


@pytest.mark.parametrize("command", COMPUTING_COMMANDS)
def test_every_computing_command_takes_threads(command: str) -> None:
    assert "--threads" in _flags_of(_commands()[command])


def test_eval_parses_threads(tmp_path: Path) -> None:
    """Regression: ``dsnet eval`` had no ``--threads`` while predict and bench did."""
    args = build_parser().parse_args(["eval", str(tmp_path / "c.yaml"), "--weights", "w.pt", "--threads", "2"])
    assert args.threads == 2 and args.command == "eval"


@pytest.mark.parametrize("command", ["eval", "train", "erf"])
def test_threads_below_one_are_refused_before_any_work(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = {
        "eval": ["eval", "c.yaml", "--weights", "w.pt"],
        "train": ["train", "c.yaml"],
        "erf": ["erf", "dsnet_head64", "-o", "out"],
    }[command]
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--threads", "0"]) == 2
    assert "--threads 0: needs a number of threads >= 1" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_threads_set_torchs_thread_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = torch.get_num_threads()
    try:
        assert (
            main(
                ["erf", "dsnet_head64", "--num-images", "1", "--size", "32", "32", "--threads", "1", "-o"]
                + [str(tmp_path / "erf")]
            )
            == 0
        )
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_torchrun_environment_is_read_in_one_place() -> None:
    assert shard_from_env({"RANK": "1", "WORLD_SIZE": "2"}) == Shard(1, 2) == (1, 2)
    assert shard_from_env({}) == Shard() and not Shard().distributed and Shard().is_main
    assert Shard(1, 3).describe() == "rank 1 of 3"
    assert local_rank_from_env({"LOCAL_RANK": "3"}) == 3 and local_rank_from_env({}) == 0
    assert is_main_process({}) and is_main_process({"RANK": "0"}) and not is_main_process({"RANK": "x"})


def test_ablate_shard_flag_is_a_shard() -> None:
    """``--shard I/N`` parses to the same :class:`Shard` torchrun's environment gives (a ``(rank, world)`` pair)."""
    assert _parse_shard("1/4") == Shard(1, 4) and _parse_shard(None) is None
    for text, message in [("1-4", "write I/N"), ("4/4", "need 0 <= I < N")]:
        with pytest.raises(ConfigError, match=message):
            _parse_shard(text)


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(
        [s for a in parser._actions for s in a.option_strings]
        + [a.dest for a in parser._actions if not a.option_strings]
    )


def test_every_command_keeps_its_options() -> None:
    """The command line's surface (every option string and positional of every command) is the recorded one:
    tests/golden/cli_options.json, made before the cli/ package (plus --threads on the commands that compute).
    A change to it is deliberate: regenerate the file and say so."""
    recorded = json.loads((Path(__file__).parent / "golden" / "cli_options.json").read_text())
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = {"": sorted(s for a in parser._actions for s in a.option_strings)}
    found.update({name: _options(p) for name, p in sub.choices.items()})
    assert found == recorded
