"""tools/build_notebooks.py: which names it accepts, and that it builds every notebook in notebooks/."""

import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "build_notebooks.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("build_notebooks", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["00_quickstart", "quickstart", "00_quickstart.ipynb", "notebooks/00_quickstart.ipynb"])
def test_names_with_or_without_prefix_and_suffix(tool, name):
    """`tools/build_notebooks.py 00_quickstart` raised KeyError."""
    assert tool.resolve(name) == "00_quickstart"


def test_every_notebook_in_the_folder_is_built_by_the_tool(tool):
    assert sorted(tool.NOTEBOOKS) == sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))


def test_quickstart_cells_match_the_notebook(tool):
    cells = json.loads((ROOT / "notebooks" / "00_quickstart.ipynb").read_text())["cells"]
    built = [("md" if c["cell_type"] == "markdown" else "code", "".join(c["source"])) for c in cells]
    assert built == tool.NOTEBOOKS["00_quickstart"]


def test_unknown_name_is_one_line_listing_the_notebooks():
    run = subprocess.run([sys.executable, str(TOOL), "00_quikstart"], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "no notebook named '00_quikstart'" in lines[0]
    assert "00_quickstart" in lines[0] and "06_gradient_regularization" in lines[0]
