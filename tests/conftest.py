import os
from pathlib import Path

import pytest

from tests.builders import mlp_onnx

REPO = Path(__file__).resolve().parent.parent


os.environ["FKD_NO_DOWNLOAD"] = "1"  # tests never reach for the network (download tests undo it)
if os.environ.get("FKD_DATA_DIR"):  # absolute, so that tests may run in their own folders
    os.environ["FKD_DATA_DIR"] = str(Path(os.environ["FKD_DATA_DIR"]).resolve())


def data_dir() -> Path | None:
    d = os.environ.get("FKD_DATA_DIR") or str(REPO.parent / "shared" / "data")
    return Path(d).resolve() if Path(d, "mnist").is_dir() else None


@pytest.fixture(autouse=True)
def _own_folder(tmp_path, monkeypatch):
    """Every test runs in its own empty folder: a command's default output files (e.g.
    certify's CSV) never land in the repository or meet another test's."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def data():
    d = data_dir()
    if d is None:
        pytest.skip("real data not found: set FKD_DATA_DIR=../shared/data")
    return d


@pytest.fixture(scope="session")
def mnist_pair(data):
    base = data / "vnncomp" / "mnist_fc" / "onnx"
    return str(base / "mnist-net_256x4.onnx"), str(base / "mnist-net_256x2.onnx")


@pytest.fixture
def xor_pair(tmp_path):
    """Hand-weighted 2-input pair: teacher z = (x0 - x1, 0) through two ReLUs,
    student z = (x0 - x1 + 0.2, 0): they disagree exactly where x0 < x1 < x0 + 0.2."""
    import numpy as np

    w1 = np.array([[1.0, -1.0], [-1.0, 1.0]])
    t = mlp_onnx(
        tmp_path / "t.onnx", [(w1, np.zeros(2)), (np.array([[1.0, -1.0], [0, 0]]), np.zeros(2))]
    )
    s = mlp_onnx(
        tmp_path / "s.onnx",
        [(w1, np.zeros(2)), (np.array([[1.0, -1.0], [0, 0]]), np.array([0.2, 0]))],
    )
    return t, s
