"""Update time and page weight of every Explorer in the book (goal: an update under 100 ms).

Takes the factories of the book's one list of widgets (:func:`curvbook.explorers`) and prints
for each one

* ``build``  seconds to construct it (precomputation the factory does once);
* ``live``   one update of the live ipywidgets view once the frames exist (moving a control
  shows a precomputed frame): what a reader feels in a notebook;
* ``redraw`` one uncached redraw (render + PNG), median over each control at either end, as
  wall time and as CPU time; CPU time is what the redraw costs on an idle machine, since
  other processes on a shared machine inflate only the wall time;
* ``frames`` the number of precomputed frames and the wall seconds to compute them all
  (paid once when the cell runs);
* ``kB``     the size of the kernel-free HTML on the static page.

Usage: ``python benchmarks/widgets.py [substring ...]`` (only factories whose name contains a
substring).
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

import curvbook
from curvlib import widgets

GOAL_MS = 100.0


def live_update_ms(ex, repeat=20):
    """Median ms to move the first control of the live widget between its two ends."""
    ex.widget()
    name, values = next(iter(ex.controls.items()))
    ctrl = ex.control_widgets[name]
    for v in (values[0], values[-1]):  # make sure both frames exist
        ex.frame(**{name: v})
    times = []
    for i in range(repeat):
        t0 = time.perf_counter()
        ctrl.value = values[-1] if i % 2 == 0 else values[0]
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def measure(factory, repeat=3):
    t0 = time.perf_counter()
    ex = factory()
    build = time.perf_counter() - t0
    wall = np.array(list(widgets.time_update(ex, repeat).values())) * 1e3
    cpu = np.array(list(widgets.time_update(ex, repeat, clock=time.process_time).values())) * 1e3
    t0 = time.perf_counter()
    html = ex.to_html()
    frames = time.perf_counter() - t0
    return {"build": build, "live": live_update_ms(ex), "wall": float(np.median(wall)),
            "cpu": float(np.median(cpu)), "cpu_max": float(cpu.max()),
            "n_frames": len(ex.frames()), "frames": frames, "kb": len(html.encode()) / 1024}


def main(argv):
    found = curvbook.explorers()
    names = [n for n in sorted(found) if not argv or any(a in n for a in argv)]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{len(names)} explorers; {os.cpu_count()} CPUs, load average {load:.1f}; "
          f"goal: update < {GOAL_MS:.0f} ms")
    header = (f"{'explorer':<56} {'build s':>7} {'live ms':>7} {'redraw ms':>9} "
              f"{'CPU ms':>6} {'CPU max':>7} {'frames':>6} {'all s':>6} {'kB':>5}")
    print(header)
    print("-" * len(header))
    total_kb, slow = 0.0, []
    for name in names:
        r = measure(found[name])
        total_kb += r["kb"]
        flag = "" if r["cpu_max"] < GOAL_MS else "  redraw > goal"
        if flag:
            slow.append(name)
        print(f"{name:<56} {r['build']:7.2f} {r['live']:7.1f} {r['wall']:9.0f} {r['cpu']:6.0f} "
              f"{r['cpu_max']:7.0f} {r['n_frames']:6d} {r['frames']:6.1f} {r['kb']:5.0f}{flag}")
    print(f"total kernel-free HTML: {total_kb / 1024:.2f} MB; live updates show precomputed "
          f"frames; {len(slow)} of {len(names)} explorers need over {GOAL_MS:.0f} ms of CPU "
          "for an uncached redraw")


if __name__ == "__main__":
    main(sys.argv[1:])
