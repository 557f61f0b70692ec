r"""Interactive figures that work in a live kernel *and* on the static website.

An :class:`Explorer` is a figure that depends on a few controls, each with a short list of
values. You write one function that draws the figure for one choice of values::

    def render(fig, kappa, method):
        ax = fig.subplots()
        ...                                     # draw on ax
        return f"{method}: 42 steps to 1e-8"    # optional one-line summary

    Explorer(render, {"kappa": [1, 10, 100, 1000], "method": ["gd", "newton"]})

and the Explorer does the rest:

* in a running notebook it shows ipywidgets controls (a slider for numbers, a drop-down
  for anything else) and redraws the figure when one moves;
* in the same cell's output it also stores a kernel-free copy: one PNG frame for every
  combination of values, plus range inputs / selects and a few lines of inline JavaScript
  that swap the frame. The book's HTML build shows that copy, so the figure stays
  interactive on a static page with no kernel and no external script.

A run that blows up is a result, not a crash: ``render`` may raise :class:`Diverged`
(or let a ``FloatingPointError``/``OverflowError`` escape), or simply return a summary such
as ``"diverged at step 12"``; the Explorer shows that text under the figure, in red, and
never an exception or an empty plot. :func:`curvlib.runs.divergence_step` finds the
step for you.

With ``CURVLIB_EXPLORER_PICTURES=0`` in the environment, frames keep their text but not their
picture (an empty PNG; ``render`` still runs, so its errors still show): for checks that compare
text only, such as ``tools/robustness.py``, which then skip the drawing that takes most of a
frame's time.
"""
from __future__ import annotations

import base64
import html
import io
import itertools
import json
import math
import numbers
import os
import re
import time
import warnings
from dataclasses import dataclass

import numpy as np

from ._checks import check_int, check_positive, check_size

__all__ = ["Explorer", "Frame", "Diverged", "format_value", "says_diverged", "time_update",
           "FRAME_MAX_BYTES", "MIN_DPI", "PICTURES_ENV"]

#: Mimetype of an ipywidgets view, as Jupyter front ends and myst-nb know it.
WIDGET_VIEW_MIMETYPE = "application/vnd.jupyter.widget-view+json"


class Diverged(ArithmeticError):
    """Raised (or returned as text) by a render function whose run blew up at ``step``."""

    def __init__(self, step):
        self.step = int(step)
        super().__init__(f"diverged at step {self.step}")


def format_value(value):
    """The label a control shows for ``value``: ``1e-05``, ``0.9``, ``100``, ``'newton'``."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{float(value):g}" if isinstance(value, float) or not float(value).is_integer() \
            else str(int(value))
    return str(value)


@dataclass(frozen=True)
class Frame:
    """One precomputed picture of an Explorer: the control values, the PNG and the summary."""

    values: tuple          # ((name, value), ...) in control order
    png: bytes             # empty when PICTURES_ENV is "0"
    text: str
    diverged: bool

    def as_dict(self):
        return dict(self.values)


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _same(a, b):
    """``a == b``, but ``True`` is not ``1`` (a control ``[1, True]`` keeps both apart)."""
    if a is b:
        return True
    if isinstance(a, (bool, np.bool_)) != isinstance(b, (bool, np.bool_)):
        return False
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _index(values, value):
    """Where ``value`` is in ``values`` (by :func:`_same`), or ``None``."""
    return next((i for i, v in enumerate(values) if _same(v, value)), None)


_DIVERGED = re.compile(r"(?<!never )(?<!not )(?<!n't )\bdiverged at step\b")


def says_diverged(summary):
    """Whether a render's summary reports a divergence: it starts with "diverged" or says
    "diverged at step" (not after "never", "not" or "n't": "never diverged" is a success)."""
    text = summary.strip().lower()
    return text.startswith("diverged") or bool(_DIVERGED.search(text))


#: The default limit on the size of one Explorer frame as an RGBA image (64 MiB, about 16
#: million pixels; the default frame has 184,320): ``figsize`` times ``dpi`` beyond it is
#: refused unless ``max_bytes`` is raised.
FRAME_MAX_BYTES = 2 ** 26
#: The smallest resolution an Explorer draws at: a 4-point font is then a pixel high
#: (matplotlib's font renderer fails on a font smaller than a pixel, e.g. at ``dpi=1``)
MIN_DPI = 20
#: The environment variable that, set to ``0``, leaves the pictures out of Explorer frames
PICTURES_ENV = "CURVLIB_EXPLORER_PICTURES"


class Explorer:
    r"""A figure driven by a few discrete controls, live in a notebook, frame-swapped on the web.

    Parameters
    ----------
    render : callable
        ``render(fig, **values)`` draws on the :class:`matplotlib.figure.Figure` ``fig``
        (call ``fig.subplots()``) and returns ``None`` or a short summary string. It may raise
        :class:`Diverged`; the Explorer catches that, ``FloatingPointError`` and
        ``OverflowError`` and shows "diverged ..." instead of a traceback.
    controls : dict
        ``{name: [value, ...]}``, in display order. Lists of numbers become sliders, anything
        else a drop-down. Names are the keyword arguments of ``render``.
    labels : dict, optional
        Display names, e.g. ``{"kappa": "condition number κ"}`` (plain text, no LaTeX: the
        same label appears on the static page).
    initial : dict, optional
        Starting values (each must be in its control's list); default: each list's first value.
    figsize, dpi : figure size in inches and resolution of the frames. The defaults give
        512 x 288 pixel frames of about 15 kB each.
    layout : str or None
        Matplotlib layout engine. The default ``None`` uses fixed margins that suit one or two
        panels with axis labels and a title; ``"constrained"`` never clips a label but draws
        every frame twice (about 2x slower per update).
    max_frames : int
        Upper bound on the number of value combinations (the static page stores one frame
        each); the default of 48 keeps a widget below about 1 MB.
    alt : str, optional
        Alternative text of the figure for screen readers. Each frame's text adds the
        control values and the frame's summary to it (:meth:`frame_alt`).
    max_bytes : float
        Refuse (``ValueError``) a frame whose RGBA image (``figsize`` times ``dpi`` pixels,
        4 bytes each) exceeds this (:data:`FRAME_MAX_BYTES`, 64 MiB; ``math.inf`` lifts it).

    Control values are taken as given, in order: a set (whose order changes with the hash
    seed) is refused, and ``True`` is a different value from ``1``. A summary counts as a
    divergence when :func:`says_diverged` finds one ("never diverged" does not).
    """

    def __init__(self, render, controls, *, labels=None, initial=None, figsize=(6.4, 3.6),
                 dpi=80, layout=None, max_frames=48, alt=None, max_bytes=FRAME_MAX_BYTES):
        if not callable(render):
            raise TypeError(f"render must be callable, got {render!r}")
        if not isinstance(controls, dict) or not controls:
            raise TypeError(f"controls must be a non-empty dict of name -> list of values, "
                            f"got {controls!r}")
        self._controls = {}
        for name, values in controls.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"controls keys must be identifiers, got {name!r}")
            if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
                raise TypeError(f"controls[{name!r}] must be a list of values, got {values!r}")
            if isinstance(values, (set, frozenset, dict)):
                raise TypeError(f"controls[{name!r}] must be an ordered list of values, not a "
                                f"{type(values).__name__} (its order would change between "
                                "runs)")
            try:
                values = tuple(values)
            except TypeError:  # a 0-d array or tensor
                raise TypeError(f"controls[{name!r}] must be a list of values, got "
                                f"{values!r}") from None
            if not values:
                raise ValueError(f"controls[{name!r}] must not be empty")
            if len({format_value(v) for v in values}) != len(values):
                raise ValueError(f"controls[{name!r}] has repeated values: {list(values)}")
            self._controls[name] = values
        max_frames = check_int("max_frames", max_frames, minimum=1)
        n = math.prod(len(v) for v in self._controls.values())
        if n > max_frames:
            raise ValueError(f"controls give {n} frames, more than max_frames={max_frames}: "
                             f"use fewer values (each frame is stored on the static page)")
        self._labels = {name: name for name in self._controls}
        for name, label in (labels or {}).items():
            if name not in self._controls:
                raise ValueError(f"labels names unknown control {name!r}")
            self._labels[name] = str(label)
        self._values = {name: values[0] for name, values in self._controls.items()}
        if initial:
            self._values.update(self._check_values(initial, "initial"))
        if (not isinstance(figsize, (tuple, list)) or len(figsize) != 2):
            raise TypeError(f"figsize must be a pair (width, height) in inches, got {figsize!r}")
        self._figsize = (check_positive("figsize[0]", figsize[0]),
                         check_positive("figsize[1]", figsize[1]))
        self._dpi = check_positive("dpi", dpi)
        if self._dpi < MIN_DPI:  # below it, small text rounds to no pixel at all
            raise ValueError(f"dpi must be at least {MIN_DPI} (the text needs pixels), got "
                             f"{self._dpi}")
        pixels = math.ceil(self._figsize[0] * self._dpi) * math.ceil(self._figsize[1] * self._dpi)
        check_size(f"an Explorer frame of {pixels} pixels (figsize x dpi)", 4 * pixels,
                   max_bytes)
        self._layout = layout
        self._render = render
        self._alt = alt if alt is not None else \
            f"Figure with controls {', '.join(self._labels.values())}"
        self._cache = {}
        self._canvas = None         # one Agg canvas draws every frame (see draw)
        self._widget = None
        self.control_widgets = {}   # name -> ipywidgets control, once widget() was built
        self.image_widget = None
        self.text_widget = None

    # ---------------------------------------------------------------- values and frames
    @property
    def controls(self):
        """``{name: (value, ...)}``: every control and its values, in display order."""
        return dict(self._controls)

    @property
    def values(self):
        """The current value of each control."""
        return dict(self._values)

    def _check_values(self, values, argname="values"):
        out = {}
        for name, value in values.items():
            if name not in self._controls:
                raise ValueError(f"{argname}: unknown control {name!r}; "
                                 f"controls are {list(self._controls)}")
            i = _index(self._controls[name], value)
            if i is None:
                raise ValueError(f"{argname}: {name} must be one of "
                                 f"{list(self._controls[name])}, got {value!r}")
            # store the control's own object (1 and 1.0 compare equal but label differently)
            out[name] = self._controls[name][i]
        return out

    def _key(self, values):
        return tuple(_index(self._controls[n], values[n]) for n in self._controls)

    def draw(self, **values):
        """Render one frame afresh (no cache): what a live update costs. Unset controls keep
        their current values."""
        full = {**self._values, **self._check_values(values)}
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        fig = Figure(figsize=self._figsize, dpi=self._dpi, layout=self._layout)
        # A fresh figure each time, on the same canvas: its renderer, and matplotlib's cache of
        # text sizes kept per renderer, carry over from frame to frame.
        if self._canvas is None:
            self._canvas = FigureCanvasAgg(fig)
        else:
            self._canvas.figure = fig
            fig.set_canvas(self._canvas)
        if self._layout is None:
            fig.subplots_adjust(left=0.1, right=0.97, bottom=0.14, top=0.9, wspace=0.3)
        text, diverged = "", False
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                result = self._render(fig, **full)
            except Diverged as exc:
                text, diverged = str(exc), True
            except (FloatingPointError, OverflowError) as exc:
                text, diverged = f"diverged ({exc})", True
            else:
                if result is not None:
                    if not isinstance(result, str):
                        raise TypeError(f"render must return None or a str, got {result!r}")
                    text = result
                    diverged = says_diverged(result)
        if not any(ax.has_data() for ax in fig.axes):
            # never an empty plot: say what happened where the plot would be
            fig.text(0.5, 0.5, text or "nothing to draw for these values", ha="center",
                     va="center", fontsize=13, color="#b00020" if diverged else "0.3",
                     wrap=True)
        png = b""
        if os.environ.get(PICTURES_ENV, "1") != "0":
            fig.patch.set_facecolor("white")
            self._canvas.draw()
            png = _palette_png(self._canvas.buffer_rgba())
        return Frame(tuple((n, full[n]) for n in self._controls), png, text, diverged)

    def frame(self, **values):
        """The frame for these values (unset controls keep their current values), cached."""
        full = {**self._values, **self._check_values(values)}
        key = self._key(full)
        if key not in self._cache:
            self._cache[key] = self.draw(**full)
        return self._cache[key]

    def frames(self):
        """Every frame, in row-major order over the controls (the last control varies fastest)."""
        names = list(self._controls)
        return [self.frame(**dict(zip(names, combo)))
                for combo in itertools.product(*self._controls.values())]

    def set(self, **values):
        """Move controls from Python, as a reader would; returns the frame now shown.

        The live widget (if built) follows, so tests can drive the real ipywidgets too.
        """
        self._values.update(self._check_values(values))
        if self._widget is not None:
            for name, value in self._values.items():
                i = _index(self._controls[name], value)
                if self.control_widgets[name].index != i:
                    self.control_widgets[name].index = i
        return self._show()

    def _show(self):
        frame = self.frame()
        if self._widget is not None:
            if self.image_widget.value != frame.png:
                self.image_widget.value = frame.png
            self.text_widget.value = _text_html(frame)
        return frame

    def frame_alt(self, frame):
        """Alternative text of one frame: the figure's ``alt``, the control values, the summary.

        ``"Paths on a quadratic. condition number κ = 30, rotation = 20. Newton 1 step"``: a
        screen reader hears what the picture shows for the values chosen, and the printed
        book labels its grid of frames with the same values.
        """
        values = ", ".join(f"{self._labels[n]} = {format_value(v)}" for n, v in frame.values)
        parts = [self._alt.rstrip(". "), values] + ([frame.text] if frame.text else [])
        return ". ".join(parts)

    # ---------------------------------------------------------------- live ipywidgets view
    def widget(self):
        """The ipywidgets view (built once): controls, the figure and the summary line."""
        if self._widget is None:
            import ipywidgets as w
            for name, values in self._controls.items():
                options = [(format_value(v), v) for v in values]
                if all(_is_number(v) for v in values) and len(values) > 1:
                    ctrl = w.SelectionSlider(options=options,
                                             index=_index(values, self._values[name]),
                                             description=self._labels[name],
                                             continuous_update=True,
                                             style={"description_width": "initial"})
                else:
                    ctrl = w.Dropdown(options=options, index=_index(values, self._values[name]),
                                      description=self._labels[name],
                                      style={"description_width": "initial"})
                ctrl.observe(self._on_change, names="index")  # by position: True is not 1
                self.control_widgets[name] = ctrl
            frame = self.frame()
            self.image_widget = w.Image(value=frame.png, format="png",
                                        layout=w.Layout(max_width="100%", height="auto"))
            self.text_widget = w.HTML(_text_html(frame))
            self._widget = w.VBox([w.HBox(list(self.control_widgets.values()),
                                          layout=w.Layout(flex_flow="row wrap")),
                                   self.image_widget, self.text_widget])
        return self._widget

    def _on_change(self, change):
        for name, ctrl in self.control_widgets.items():
            self._values[name] = self._controls[name][ctrl.index]
        self._show()

    # ---------------------------------------------------------------- static page
    def to_html(self):
        """Self-contained HTML: every frame, range inputs / selects and an inline script."""
        names = list(self._controls)
        images, image_index, frames = [], {}, []
        for fr in self.frames():
            if fr.png not in image_index:  # identical pictures are stored once
                image_index[fr.png] = len(images)
                images.append("data:image/png;base64," + base64.b64encode(fr.png).decode())
            frames.append([image_index[fr.png], fr.text, int(fr.diverged), self.frame_alt(fr)])
        current = self.frame()
        inputs = []
        for i, name in enumerate(names):
            values = self._controls[name]
            pos = _index(values, self._values[name])
            label = html.escape(self._labels[name])
            if all(_is_number(v) for v in values) and len(values) > 1:
                inputs.append(
                    f'<label class="cx-control"><span>{label}</span>'
                    f'<input type="range" min="0" max="{len(values) - 1}" step="1" '
                    f'value="{pos}" data-cx="{i}" aria-label="{label}">'
                    f'<output>{html.escape(format_value(values[pos]))}</output></label>')
            else:
                options = "".join(
                    f'<option value="{j}"{" selected" if j == pos else ""}>'
                    f'{html.escape(format_value(v))}</option>' for j, v in enumerate(values))
                inputs.append(f'<label class="cx-control"><span>{label}</span>'
                              f'<select data-cx="{i}" aria-label="{label}">{options}</select>'
                              f'</label>')
        data = {"names": [self._labels[n] for n in names],
                "labels": [[format_value(v) for v in self._controls[n]] for n in names],
                "images": images, "frames": frames}
        width, height = (round(s * self._dpi) for s in self._figsize)
        return (
            '<div class="curvlib-explorer">' + _STYLE
            + '<div class="cx-controls">' + "".join(inputs) + "</div>"
            + f'<div class="cx-box"><img class="cx-frame" width="{width}" height="{height}" '
              f'alt="{html.escape(self.frame_alt(current))}" '
              f'title="click to see the figure at full size" '
              f'src="{images[image_index[current.png]]}"></div>'
            + f'<p class="cx-text{" cx-diverged" if current.diverged else ""}" '
              f'aria-live="polite">{html.escape(current.text)}</p>'
            + '<script type="application/json" class="cx-data">' + _json_for_script(data)
            + "</script><script>" + _SCRIPT + "</script></div>")

    def __repr__(self):
        spec = ", ".join(f"{n}={format_value(v)}" for n, v in self._values.items())
        n = math.prod(len(v) for v in self._controls.values())
        text = self.frame().text
        return f"Explorer({spec}; {n} frames)" + (f"\n{text}" if text else "")

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = {"text/plain": repr(self), "text/html": self.to_html()}
        view = self.widget()
        if view._view_name is not None:
            bundle[WIDGET_VIEW_MIMETYPE] = {"version_major": 2, "version_minor": 0,
                                            "model_id": view.model_id}
        if include:
            bundle = {k: v for k, v in bundle.items() if k in include}
        if exclude:
            bundle = {k: v for k, v in bundle.items() if k not in exclude}
        return bundle


def _palette_png(rgba):
    """A drawn canvas's RGBA pixels as a PNG with a 256-colour palette: about 3x smaller than
    matplotlib's own PNG, same look."""
    from PIL import Image
    img = Image.fromarray(np.asarray(rgba)).convert("RGB")
    out = io.BytesIO()
    img.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
        out, format="PNG")
    return out.getvalue()


def _text_html(frame):
    color = "#b00020" if frame.diverged else "inherit"
    return (f'<span style="color:{color};font-family:monospace">'
            f"{html.escape(frame.text) or '&nbsp;'}</span>")


def _json_for_script(obj):
    """JSON that is safe inside a <script> element."""
    return (json.dumps(obj, separators=(",", ":"), ensure_ascii=True)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


_STYLE = (
    "<style>.curvlib-explorer{margin:.5em 0;max-width:100%}"
    ".curvlib-explorer .cx-controls{display:flex;flex-wrap:wrap;gap:.3em 1.5em;"
    "margin-bottom:.4em;font-size:.9em}"
    ".curvlib-explorer .cx-control{display:flex;align-items:center;gap:.5em}"
    ".curvlib-explorer input[type=range]{width:10em;max-width:45vw}"
    ".curvlib-explorer output{font-family:monospace;min-width:4ch}"
    ".curvlib-explorer select{font:inherit;padding:.1em .3em}"
    # keyboard users see where they are (the theme's own focus ring is faint on a slider)
    ".curvlib-explorer input:focus-visible,.curvlib-explorer select:focus-visible"
    "{outline:3px solid #0072b2;outline-offset:2px}"
    ".curvlib-explorer .cx-box{overflow-x:auto}"
    ".curvlib-explorer img.cx-frame{display:block;max-width:100%;height:auto;"
    "background:#fff;border-radius:4px;cursor:zoom-in}"
    ".curvlib-explorer .cx-zoom img.cx-frame{max-width:none;cursor:zoom-out}"
    ".curvlib-explorer .cx-text{font-family:monospace;font-size:.9em;margin:.3em 0 0;"
    "min-height:1.4em}.curvlib-explorer .cx-diverged{color:#d32f2f;font-weight:600}"
    "</style>")

# Kernel-free counterpart of the live widget: pick the frame for the chosen values; a click
# on the figure shows it at full size (it is scaled down on a phone).
_SCRIPT = (
    "(function(){var root=document.currentScript.parentNode;"
    "var data=JSON.parse(root.querySelector('script.cx-data').textContent);"
    "var inputs=root.querySelectorAll('[data-cx]');"
    "var img=root.querySelector('img.cx-frame'),txt=root.querySelector('.cx-text');"
    "function update(){var k=0;for(var i=0;i<inputs.length;i++){var j=+inputs[i].value;"
    "k=k*data.labels[i].length+j;var out=inputs[i].parentNode.querySelector('output');"
    "if(out){out.textContent=data.labels[i][j];}}"
    "var f=data.frames[k];img.src=data.images[f[0]];img.alt=f[3];txt.textContent=f[1];"
    "txt.classList.toggle('cx-diverged',f[2]===1);}"
    "for(var i=0;i<inputs.length;i++){inputs[i].addEventListener('input',update);"
    "inputs[i].addEventListener('change',update);}"
    "img.addEventListener('click',function(){img.parentNode.classList.toggle('cx-zoom');});"
    "})();")


def time_update(explorer, repeat=3, clock=time.perf_counter):
    """Median time of one uncached update (render + PNG) at each end of each control.

    Used by ``benchmarks/widgets.py``; returns ``{(name, value): seconds}``. Pass
    ``clock=time.process_time`` for the CPU time, which other processes on a shared machine
    do not inflate.
    """
    repeat = check_int("repeat", repeat, minimum=1)
    out = {}
    for name, values in explorer.controls.items():
        for value in dict.fromkeys((values[0], values[-1])):
            times = []
            for _ in range(repeat):
                t0 = clock()
                explorer.draw(**{name: value})
                times.append(clock() - t0)
            out[(name, value)] = float(np.median(times))
    return out
