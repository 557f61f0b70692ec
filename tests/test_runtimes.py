"""Appendix A3 shows the chapter run times that `make notebooks` recorded in runtimes.json."""
import json
import re
from pathlib import Path

CHAPTERS = Path(__file__).resolve().parent.parent / "chapters"


def _a3_table():
    """{notebook: seconds} from the run-time table in appendix A3's stored output."""
    nb = json.loads((CHAPTERS / "a3_performance.ipynb").read_text())
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            text = "".join(out.get("data", {}).get("text/markdown", ""))
            if text.startswith("| notebook | seconds |"):
                return {m[1]: float(m[2]) for m in re.finditer(r"^\| (\S+) \| ([\d.]+) \|", text, re.M)}
    raise AssertionError("appendix A3 has no stored run-time table: execute it (make notebooks)")


def test_a3_shows_the_recorded_runtimes():
    recorded = json.loads((CHAPTERS / "runtimes.json").read_text())["notebooks"]
    shown = _a3_table()
    expected = {k: v["seconds"] for k, v in recorded.items() if k != "a3_performance"}
    assert shown == expected, "A3 is stale: re-run it after the notebooks it times (make notebooks)"
    # every chapter has a recorded time
    assert {p.stem for p in CHAPTERS.glob("[01][0-9]_*.ipynb")} <= set(recorded)


def test_notebooks_are_handed_out_longest_first(tmp_path, monkeypatch):
    """`make test-notebooks` and the robustness re-run start the longest notebooks first, so a
    long one does not run alone at the end; one with no recorded time counts as longest."""
    import sys
    sys.path.insert(0, str(CHAPTERS.parent / "tools"))
    import run_notebooks

    runtimes = tmp_path / "runtimes.json"
    runtimes.write_text(json.dumps({"notebooks": {"a": {"seconds": 5}, "b": {"seconds": 50},
                                                  "c": {"seconds": 20}}}))
    monkeypatch.setattr(run_notebooks, "RUNTIMES", runtimes)
    assert run_notebooks.longest_first(["a", "b", "c", "new"]) == ["new", "b", "c", "a"]
    monkeypatch.setattr(run_notebooks, "RUNTIMES", tmp_path / "missing.json")
    assert run_notebooks.longest_first(["a", "b"]) == ["a", "b"]   # nothing known: as given
