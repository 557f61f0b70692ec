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
