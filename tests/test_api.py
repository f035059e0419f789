"""The README's Python API example runs as written (from the repository root), and the
public names of ``fkdverify`` resolve."""

import re

import fkdverify
from tests.conftest import REPO


def test_public_names_resolve():
    for name in fkdverify.__all__:
        assert getattr(fkdverify, name) is not None


def test_readme_python_example_runs(monkeypatch, capsys):
    text = (REPO / "README.md").read_text()
    (code,) = re.findall(r"## Python API\n\n```python\n(.*?)```", text, re.S)
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("FKD_DATA_DIR", raising=False)  # the embedded test set, as for a user
    exec(compile(code, "README.md", "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5
    for line in lines[:4]:
        index, agreement, faithful, *_ = line.split()
        assert agreement in ("agree", "disagree", "unknown")
    assert lines[4].split()[0] in ("agree", "disagree", "unknown")
