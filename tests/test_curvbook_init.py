"""curvbook's package level: results stored where the chapters run, and the list of widgets."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

import curvbook
from curvlib.widgets import Explorer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_results_go_to_the_working_directory_or_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("CURVBOOK_RESULTS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert curvbook.results_dir() == tmp_path / "results"
    path = curvbook.save_results("99_test", {"a": np.float64(1.5), "b": [np.int64(2), 3],
                                             "c": {"d": np.arange(2)}})
    assert path == tmp_path / "results" / "99_test.json"
    assert curvbook.load_results("99_test") == {"a": 1.5, "b": [2, 3], "c": {"d": [0, 1]}}
    assert json.loads(path.read_text())["a"] == 1.5
    monkeypatch.setenv("CURVBOOK_RESULTS", str(tmp_path / "elsewhere"))
    curvbook.save_results("99_test", {"x": 1})
    assert (tmp_path / "elsewhere" / "99_test.json").exists()


def test_results_bad_input(tmp_path):
    with pytest.raises(ValueError, match="finite"):
        curvbook.save_results("x", {"a": math.nan}, tmp_path)
    with pytest.raises(ValueError, match="chapter"):
        curvbook.save_results("", {}, tmp_path)
    with pytest.raises(TypeError, match="results"):
        curvbook.save_results("x", [1], tmp_path)
    with pytest.raises(FileNotFoundError, match="run its notebook"):
        curvbook.load_results("nope", tmp_path)


BOOK = curvbook.explorers()


def test_the_list_names_a_widget_of_every_module_that_builds_one():
    root = Path(curvbook.__file__).parent
    building = {p.stem for p in root.glob("*.py")
                if p.stem != "__init__" and "Explorer(" in p.read_text()}
    assert {name.split(".")[0] for name in BOOK} == building
    assert all(callable(f) for f in BOOK.values())


@pytest.mark.parametrize("name", sorted(BOOK))
def test_every_book_explorer_responds_at_its_extremes(name):
    ex = BOOK[name]()
    assert isinstance(ex, Explorer), f"{name} must return a curvlib.widgets.Explorer"
    start = ex.frame()
    assert start.png.startswith(PNG_MAGIC)
    for control, values in ex.controls.items():
        if len(values) < 2:
            continue
        low = ex.set(**{control: values[0]})
        high = ex.set(**{control: values[-1]})
        assert (low.png, low.text) != (high.png, high.text), (
            f"{name}: moving {control} from {values[0]!r} to {values[-1]!r} changed nothing")
        for frame in (low, high):
            assert isinstance(frame.text, str)
            if frame.diverged:
                assert "diverged" in frame.text.lower()
        ex.set(**{control: start.as_dict()[control]})
