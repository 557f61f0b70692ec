"""curvlib.widgets: the Explorer mechanism (the book's explorers: tests/test_curvbook_init.py)."""
from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from curvlib import widgets
from curvlib.runs import divergence_step
from curvlib.widgets import Diverged, Explorer, format_value

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def gd_quadratic(fig, kappa, lr, steps=30):
    """Gradient descent on (x1^2 + kappa x2^2)/2 from (1, 1); diverges when lr*kappa > 2."""
    h = np.array([1.0, kappa])
    path = [np.array([1.0, 1.0])]
    for _ in range(steps):
        path.append(path[-1] - lr * h * path[-1])
    path = np.array(path)
    k = divergence_step(path)
    ax = fig.subplots()
    ax.plot(*path[:k].T, ".-")
    ax.set(xlim=(-2, 2), ylim=(-2, 2))
    ax.set_axis_off()  # no ticks: keeps these tests fast
    if k is not None:
        return f"diverged at step {k}"
    return f"f = {(path[-1] ** 2 @ h) / 2:.2e}"


def make(**kwargs):
    controls = kwargs.pop("controls", {"kappa": [1, 10, 100], "lr": [0.001, 0.01, 0.03]})
    kwargs.setdefault("dpi", 30)
    kwargs.setdefault("figsize", (2.0, 1.5))
    return Explorer(gd_quadratic, controls, **kwargs)


def colours(png):
    return len(Image.open(io.BytesIO(png)).convert("RGB").getcolors(1 << 16) or [])


# ------------------------------------------------------------------ frames and values
def test_frames_cover_every_combination_in_row_major_order():
    ex = make()
    frames = ex.frames()
    assert len(frames) == 9
    assert [f.as_dict() for f in frames[:4]] == [
        {"kappa": 1, "lr": 0.001}, {"kappa": 1, "lr": 0.01}, {"kappa": 1, "lr": 0.03},
        {"kappa": 10, "lr": 0.001}]
    assert all(f.png.startswith(PNG_MAGIC) for f in frames)
    assert len({f.png for f in frames}) == 9


def test_frames_on_the_shared_canvas_equal_frames_drawn_alone():
    """One canvas draws every frame of an Explorer: nothing carries over from one frame to the
    next (a frame drawn after eight others is the frame a new Explorer draws first)."""
    ex = make()
    last = ex.frames()[-1]
    alone = make(initial=last.as_dict()).frame()
    assert alone.png == last.png and alone.text == last.text


def test_frames_without_pictures_keep_their_text(monkeypatch):
    pictures = make().frames()
    monkeypatch.setenv(widgets.PICTURES_ENV, "0")
    calls = []

    def render(fig, **values):
        calls.append(values)
        return gd_quadratic(fig, **values)
    ex = Explorer(render, {"kappa": [1, 10, 100], "lr": [0.001, 0.01, 0.03]}, dpi=30,
                  figsize=(2.0, 1.5))
    text_only = ex.frames()
    assert len(calls) == 9                         # render still runs for every frame
    assert all(f.png == b"" for f in text_only)
    assert [(f.values, f.text, f.diverged) for f in text_only] == \
        [(f.values, f.text, f.diverged) for f in pictures]
    assert repr(ex) == repr(make())                # what the robustness check compares


def test_set_moves_controls_and_changes_the_figure():
    ex = make()
    first = ex.set(kappa=1, lr=0.001)
    assert ex.values == {"kappa": 1, "lr": 0.001}
    for name, values in ex.controls.items():
        moved = ex.set(**{name: values[-1]})
        assert moved.png != first.png, name
        ex.set(**{name: values[0]})
    assert ex.set(kappa=1, lr=0.001) == first  # cached, same frame


def test_divergence_is_text_not_an_exception():
    ex = make()
    frame = ex.set(kappa=100, lr=0.03)  # lr * kappa = 3 > 2
    assert frame.diverged
    assert re.fullmatch(r"diverged at step \d+", frame.text)
    assert not ex.set(kappa=1).diverged


def test_raised_divergence_is_shown_on_a_non_empty_figure():
    def render(fig, lr):
        if lr > 1:
            raise Diverged(7)
        fig.subplots().plot([0, 1], [0, lr])

    ex = Explorer(render, {"lr": [0.5, 2.0]}, dpi=40)
    frame = ex.set(lr=2.0)
    assert frame.text == "diverged at step 7" and frame.diverged
    assert colours(frame.png) > 2  # the message is drawn where the plot would be


def test_floating_point_errors_become_a_diverged_status():
    def render(fig, x):
        with np.errstate(over="raise"):
            y = np.float64(10.0) ** x
        fig.subplots().plot([0, 1], [0, y])

    ex = Explorer(render, {"x": [1, 400]}, dpi=40)
    assert not ex.set(x=1).diverged
    frame = ex.set(x=400)
    assert frame.diverged and frame.text.startswith("diverged")


def test_nothing_drawn_still_gives_a_picture_with_words():
    ex = Explorer(lambda fig, a: None, {"a": [1, 2]}, dpi=40)
    assert colours(ex.frame().png) > 2


def test_render_must_return_text_or_none():
    ex = Explorer(lambda fig, a: 3.0, {"a": [1]}, dpi=40)
    with pytest.raises(TypeError, match="render must return None or a str"):
        ex.frame()


def test_other_exceptions_are_not_swallowed():
    def render(fig, a):
        raise KeyError("bug")
    with pytest.raises(KeyError):
        Explorer(render, {"a": [1]}).frame()


# ------------------------------------------------------------------ argument checks
@pytest.mark.parametrize("kwargs, error, match", [
    ({"controls": {}}, TypeError, "controls must be a non-empty dict"),
    ({"controls": {"not a name": [1]}}, ValueError, "identifiers"),
    ({"controls": {"a": []}}, ValueError, r"controls\['a'\] must not be empty"),
    ({"controls": {"a": "abc"}}, TypeError, r"controls\['a'\] must be a list"),
    ({"controls": {"a": [1, 1.0]}}, ValueError, "repeated"),
    ({"controls": {"a": list(range(10)), "b": list(range(10))}}, ValueError, "max_frames"),
    ({"initial": {"kappa": 3}}, ValueError, "kappa must be one of"),
    ({"initial": {"nope": 3}}, ValueError, "unknown control 'nope'"),
    ({"labels": {"nope": "x"}}, ValueError, "labels names unknown control"),
    ({"dpi": -1}, ValueError, "dpi must be positive"),
    ({"figsize": 3}, TypeError, "figsize"),
    ({"max_frames": 0}, ValueError, "max_frames"),
])
def test_bad_arguments_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        make(**kwargs)


def test_render_must_be_callable():
    with pytest.raises(TypeError, match="render must be callable"):
        Explorer("plot", {"a": [1]})


def test_set_rejects_unknown_values():
    ex = make()
    with pytest.raises(ValueError, match="lr must be one of"):
        ex.set(lr=0.5)


# ------------------------------------------------------------------ live ipywidgets view
def test_live_widget_controls_drive_the_image():
    ipywidgets = pytest.importorskip("ipywidgets")
    ex = make()
    box = ex.widget()
    assert isinstance(box, ipywidgets.VBox)
    assert set(ex.control_widgets) == {"kappa", "lr"}
    assert isinstance(ex.control_widgets["kappa"], ipywidgets.SelectionSlider)
    for name, ctrl in ex.control_widgets.items():
        values = ex.controls[name]
        ctrl.value = values[0]
        before = ex.image_widget.value
        ctrl.value = values[-1]              # as if a reader dragged the slider to the end
        assert ex.values[name] == values[-1]
        assert ex.image_widget.value != before
        assert ex.image_widget.value == ex.frame().png
    ex.set(kappa=100, lr=0.03)              # from Python: the live controls follow
    assert ex.control_widgets["kappa"].value == 100
    assert "diverged at step" in ex.text_widget.value


def test_categorical_controls_become_dropdowns():
    ipywidgets = pytest.importorskip("ipywidgets")

    def render(fig, method):
        fig.subplots().plot([0, 1], [0, 1 if method == "gd" else 2])
    ex = Explorer(render, {"method": ["gd", "newton"]}, dpi=40)
    ex.widget()
    assert isinstance(ex.control_widgets["method"], ipywidgets.Dropdown)
    assert '<select data-cx="0"' in ex.to_html()


# ------------------------------------------------------------------ the static page
def _static_data(html):
    body = re.search(r'<script type="application/json" class="cx-data">(.*?)</script>',
                     html, re.S).group(1)
    return json.loads(body)


def test_static_html_holds_every_frame_and_no_external_reference():
    ex = make(labels={"kappa": "condition number κ"})
    html = ex.to_html()
    data = _static_data(html)
    assert len(data["frames"]) == 9
    assert data["labels"] == [["1", "10", "100"], ["0.001", "0.01", "0.03"]]
    assert all(src.startswith("data:image/png;base64,") for src in data["images"])
    assert [f[1] for f in data["frames"]] == [f.text for f in ex.frames()]
    assert [f[2] for f in data["frames"]] == [int(f.diverged) for f in ex.frames()]
    assert html.count('type="range"') == 2
    assert "condition number κ" in html
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", html)
    # the JSON cannot close its <script> element early
    inner = re.search(r'class="cx-data">(.*?)</script>', html, re.S).group(1)
    assert "<" not in inner


def test_every_frame_has_alt_text_from_its_values_and_summary():
    ex = make(labels={"kappa": "condition number κ"}, alt="Gradient descent on a quadratic.",
              initial={"kappa": 100, "lr": 0.03})
    html = ex.to_html()
    data = _static_data(html)
    assert data["names"] == ["condition number κ", "lr"]
    alts = [f[3] for f in data["frames"]]
    for frame, alt in zip(ex.frames(), alts):
        assert alt == ex.frame_alt(frame)
        assert alt.startswith("Gradient descent on a quadratic. condition number κ = ")
        assert alt.endswith(frame.text) and frame.text
    assert alts[4] == "Gradient descent on a quadratic. condition number κ = 10, lr = 0.01. " \
                      + ex.frame(kappa=10, lr=0.01).text
    assert len(set(alts)) == 9
    # the image shown first carries its own frame's text, and the script swaps it with the frame
    shown = re.search(r'<img class="cx-frame"[^>]*alt="([^"]*)"', html).group(1)
    assert shown == ex.frame_alt(ex.frame(kappa=100, lr=0.03)).replace("&", "&amp;")
    assert "diverged at step" in shown
    assert "img.alt=f[3]" in html


def test_identical_pictures_are_stored_once():
    def render(fig, a, unused):
        fig.subplots().plot([0, 1], [0, a])
    ex = Explorer(render, {"a": [1, 2], "unused": ["x", "y", "z"]}, dpi=40)
    data = _static_data(ex.to_html())
    assert len(data["frames"]) == 6 and len(data["images"]) == 2


def test_mimebundle_carries_live_view_and_static_copy():
    ex = make()
    bundle = ex._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html", widgets.WIDGET_VIEW_MIMETYPE}
    assert bundle[widgets.WIDGET_VIEW_MIMETYPE]["model_id"] == ex.widget().model_id
    assert bundle["text/plain"].startswith("Explorer(kappa=1, lr=0.001; 9 frames)")
    assert set(ex._repr_mimebundle_(include={"text/html"})) == {"text/html"}
    assert widgets.WIDGET_VIEW_MIMETYPE not in ex._repr_mimebundle_(
        exclude={widgets.WIDGET_VIEW_MIMETYPE})


def test_static_html_is_reproducible_apart_from_the_pixels():
    """What nbval compares (after tests/nbval_sanitize.cfg masks the PNGs) is deterministic."""
    mask = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")
    small = {"kappa": [1, 100], "lr": [0.001, 0.03]}
    a, b = make(controls=small).to_html(), make(controls=small).to_html()
    assert mask.sub("<frame>", a) == mask.sub("<frame>", b)
    cfg = open("tests/nbval_sanitize.cfg").read()
    pattern = re.search(r"^regex: (data:image.*)$", cfg, re.M).group(1)
    assert re.sub(pattern, "<frame>", a) == mask.sub("<frame>", a)


# ------------------------------------------------------------------ helpers
@pytest.mark.parametrize("value, label", [(1, "1"), (1.0, "1"), (0.001, "0.001"),
                                          (1e-5, "1e-05"), (100.0, "100"), (0.9, "0.9"),
                                          ("newton", "newton"), (True, "True")])
def test_format_value(value, label):
    assert format_value(value) == label


def test_time_update_measures_each_controls_ends():
    times = widgets.time_update(make(), repeat=1)
    assert set(times) == {("kappa", 1), ("kappa", 100), ("lr", 0.001), ("lr", 0.03)}
    assert all(t > 0 for t in times.values())
