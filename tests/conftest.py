from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from .synthetic import write_bdd100k_like, write_camvid_like

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DSNET_SHARED", REPO.parent / "shared"))

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs one worker per core: one torch thread each
    torch.set_num_threads(1)

# A shell without job control (`bash -c '... &'`, some CI runners) starts its children with SIGINT ignored, and
# exec keeps it ignored: the Ctrl-C tests would then test that shell, not dsnet. Give the suite (and the
# processes it starts) the SIGINT a terminal gives.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def shared_path(*parts: str) -> Path:
    """A path inside ../shared; the test is skipped (with the reason) when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found: {path} (set DSNET_SHARED)")
    return path


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def synthetic_camvid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CamVid-layout dataset made by the test session (8 train, 3 val images of 72x96)."""
    return write_camvid_like(tmp_path_factory.mktemp("synthetic_camvid"))


@pytest.fixture(scope="session")
def synthetic_bdd100k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BDD100K-layout dataset made by the test session (3 train images of 54x96, Cityscapes classes)."""
    return write_bdd100k_like(tmp_path_factory.mktemp("synthetic_bdd100k"))
