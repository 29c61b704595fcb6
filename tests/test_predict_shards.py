"""``dsnet predict`` across processes and machines (torchrun): disjoint deterministic shards whose outputs
equal a one-process run file for file, and ``--resume`` that continues a killed run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import dsnet
from dsnet.cli import main
from dsnet.data import describe_dataset
from dsnet.errors import ConfigError
from dsnet.predict import discover_inputs
from dsnet.predict.shard import Shard, shard_from_env, take_shard

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "demo" / "camvid-mini" / "images" / "val"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = dsnet.create_model("dsnet_head64", num_classes=11, aux_heads=False)
    path = tmp_path_factory.mktemp("shards") / "w.safetensors"
    return dsnet.save_weights(model, path, {"model": "dsnet_head64"}, label_space=describe_dataset("camvid"))


def _args(weights: Path, out: Path) -> list[str]:
    # one image per pass and one thread: the same arithmetic whichever process runs an image
    return ["predict", "dsnet_head64", str(IMAGES), "--weights", str(weights), "-o", str(out)] + [
        "--device", "cpu", "--batch-size", "1", "--threads", "1", "--color",
    ]  # fmt: skip


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def one_process(weights: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("one") / "pred"
    assert main(_args(weights, out)) == 0
    return _files(out)


def test_shards_are_disjoint_complete_and_independent_of_listing_order():
    inputs = discover_inputs([str(IMAGES)])
    shards = [take_shard(inputs, Shard(r, 3)) for r in range(3)]
    names = [i.rel.as_posix() for s in shards for i in s]
    assert sorted(names) == sorted(i.rel.as_posix() for i in inputs) and len(set(names)) == len(names)
    assert take_shard(list(reversed(inputs)), Shard(1, 3)) == shards[1]
    assert shard_from_env({"RANK": "1", "WORLD_SIZE": "2"}) == Shard(1, 2)
    assert shard_from_env({}) == Shard(0, 1)
    with pytest.raises(ConfigError, match="RANK=2, WORLD_SIZE=2: the rank must be in 0..WORLD_SIZE-1"):
        shard_from_env({"RANK": "2", "WORLD_SIZE": "2"})


def test_resume_writes_only_what_is_missing(weights, one_process, tmp_path, capsys):
    out = tmp_path / "pred"
    assert main(_args(weights, out)) == 0
    gone = ["labels/0016E5_07959.png", "color/0016E5_08151.png"]
    for rel in gone:
        (out / rel).unlink()
    kept = out / "labels" / "0016E5_08055.png"
    os.utime(kept, (1, 1))  # a file --resume must leave alone
    capsys.readouterr()
    assert main(_args(weights, out)) == 2  # without --resume or --overwrite the folder is refused
    assert "already holds" in capsys.readouterr().err
    assert main([*_args(weights, out), "--resume"]) == 0
    assert "predicted 2 image(s)" in capsys.readouterr().out
    assert kept.stat().st_mtime == 1
    assert _files(out) == one_process


def _torchrun(args: list[str], extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *extra, "-m", "dsnet", *args]


@pytest.mark.slow
def test_two_processes_equal_one_file_for_file(weights, one_process, tmp_path):
    out = tmp_path / "pred"
    result = subprocess.run(
        _torchrun(_args(weights, out), ["--standalone", "--nproc-per-node", "2"]),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "rank 0 of 2" in result.stdout and "rank 1 of 2" in result.stdout
    assert _files(out) == one_process


@pytest.mark.slow
def test_two_torchrun_nodes_on_this_machine_equal_one_process(weights, one_process, tmp_path):
    out = tmp_path / "pred"
    port, rdzv = _free_port(), f"dsnet-predict-{uuid.uuid4().hex[:8]}"
    agents = []
    for node_rank in (0, 1):
        extra = ["--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(node_rank), "--rdzv-backend", "c10d"]
        extra += ["--rdzv-endpoint", f"localhost:{port}", "--rdzv-id", rdzv, "--local-addr", "127.0.0.1"]
        agents.append(
            subprocess.Popen(
                _torchrun(_args(weights, out), extra),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
        )
    logs = [a.communicate(timeout=600)[0] for a in agents]
    assert [a.returncode for a in agents] == [0, 0], "\n".join(log[-3000:] for log in logs)
    assert _files(out) == one_process


_HOLD_A_RANK_LOCK = """
import sys, time
from dsnet.locking import FolderLock
lock = FolderLock(sys.argv[1], remove=True, name=".dsnet.lock.rank" + sys.argv[2])
assert lock.acquire() is None
print("held", flush=True)
time.sleep(600)
"""


def test_a_plain_run_is_refused_while_a_torchrun_rank_holds_the_folder(weights, tmp_path, capsys):
    """A torchrun job's ranks hold `.dsnet.lock.rankN`; a plain `--resume` into the folder must not run beside
    them (it computed images twice), and a rank lock left by `kill -9` does not block the folder forever."""
    out = tmp_path / "pred"
    assert main([*_args(weights, out), "--resume"]) == 0
    (out / "labels" / "0016E5_07959.png").unlink()
    rank = subprocess.Popen([sys.executable, "-c", _HOLD_A_RANK_LOCK, str(out), "1"], stdout=subprocess.PIPE, text=True)
    try:
        assert rank.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert main([*_args(weights, out), "--resume"]) == 2
        err = capsys.readouterr().err
        assert f"in use by another process (pid {rank.pid} on " in err and len(err.strip().splitlines()) == 1
        assert not (out / "labels" / "0016E5_07959.png").exists()  # nothing computed beside the job
    finally:
        rank.kill()  # kill -9: the lock file stays behind, nobody holds it
        rank.wait()
    assert (out / ".dsnet.lock.rank1").exists()
    assert main([*_args(weights, out), "--resume"]) == 0
    assert "predicted 1 image(s)" in capsys.readouterr().out
    assert not (out / ".dsnet.lock.rank1").exists()  # the stale lock was cleared
