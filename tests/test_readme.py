"""The README's code runs as pasted (a changed API breaks this test, not a user)."""
import re
import runpy
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_block_runs(i, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    script = tmp_path / f"block{i}.py"
    script.write_text(BLOCKS[i])
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert out.strip(), "a README example should print what it shows"
    for name in re.findall(r'savefig\("([^"]+)"', BLOCKS[i]) + re.findall(r'save\("([^"]+)"\)', BLOCKS[i]):
        assert (tmp_path / name).stat().st_size > 1000, f"{name} was not written"
