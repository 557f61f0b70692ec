"""Time one step of each curvlib.optim optimizer against its torch.optim twin (foreach=True).

The model is an MNIST-sized MLP (784-1024-256-10, about 1.07 million float32 parameters)
on the CPU. Every optimizer steps its own copy of the model with the same fixed gradients
(a step's cost does not depend on their values). The contenders are timed in turns within
each repeat, in an order that rotates between repeats, so that a burst of load from another
process falls on all of them alike. Before each timed step a 64 MiB buffer is rewritten, so
every step starts with cold caches, as it does in training after the backward pass.
Printed: the median time per step and the ratio curvlib / torch (below 1.0 means curvlib is
faster), for curvlib's fast path (the default, foreach) and for its readable reference path
(foreach=False, one rule call per tensor).

Timing uses this process's CPU time on one thread by default (``--clock cpu --threads 1``),
which other processes on a shared machine do not inflate; ``--clock wall`` gives elapsed time.

Run:  python benchmarks/optimizers.py [--repeats 60] [--threads 1] [--clock cpu|wall]
At the end it runs benchmarks/lbfgs.py's main() when that file exists.
"""
from __future__ import annotations

import argparse
import importlib.util
import pathlib
import statistics
import sys
import time

import torch

import curvlib.optim as co

SIZES = (784, 1024, 256, 10)

#: label -> (curvlib class, torch class, keyword arguments shared by both)
CASES = {
    "SGD": (co.SGD, torch.optim.SGD, dict(lr=1e-3)),
    "SGD momentum": (co.SGD, torch.optim.SGD, dict(lr=1e-3, momentum=0.9)),
    "SGD nesterov": (co.SGD, torch.optim.SGD, dict(lr=1e-3, momentum=0.9, nesterov=True)),
    "SGD momentum+wd": (co.SGD, torch.optim.SGD, dict(lr=1e-3, momentum=0.9,
                                                      weight_decay=5e-4)),
    "Adam": (co.Adam, torch.optim.Adam, dict(lr=1e-3)),
    "Adam amsgrad": (co.Adam, torch.optim.Adam, dict(lr=1e-3, amsgrad=True)),
    "AdamW": (co.AdamW, torch.optim.AdamW, dict(lr=1e-3, weight_decay=1e-2)),
    "Adagrad": (co.Adagrad, torch.optim.Adagrad, dict(lr=1e-2)),
    "RMSprop": (co.RMSprop, torch.optim.RMSprop, dict(lr=1e-3)),
    "RMSprop centered+mom": (co.RMSprop, torch.optim.RMSprop,
                             dict(lr=1e-3, centered=True, momentum=0.9)),
}


def mlp_params(seed=0):
    """The MLP's parameters with fixed random gradients attached."""
    torch.manual_seed(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    params = list(torch.nn.Sequential(*layers).parameters())
    gen = torch.Generator().manual_seed(seed + 1)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-2
    return params


#: ``cpu``: CPU seconds of this process, which time spent descheduled by other processes does
#: not inflate (the machine is shared); ``wall``: elapsed seconds.
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def time_step(opt, clock=time.process_time, evict=None):
    if evict is not None:  # start from cold caches, as after a forward and backward pass
        evict.add_(1.0)
    start = clock()
    opt.step()
    return clock() - start


def bench_case(ours_cls, torch_cls, kwargs, repeats, warmup=3, clock=time.process_time,
               evict=None):
    """Median seconds per step for torch foreach, curvlib fast path, curvlib reference path.

    The order of the contenders rotates between repeats, so none runs twice in a row
    (a contender that did would find its tensors still in cache).
    """
    opts = {
        "torch": torch_cls(mlp_params(), foreach=True, **kwargs),
        "fast": ours_cls(mlp_params(), foreach=True, **kwargs),
        "reference": ours_cls(mlp_params(), foreach=False, **kwargs),
    }
    names = list(opts)
    times = {name: [] for name in names}
    for r in range(warmup + repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            t = time_step(opts[name], clock, evict)
            if r >= warmup:
                times[name].append(t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def run_lbfgs_benchmark():
    """Hook: benchmarks/lbfgs.py (written separately) reports L-BFGS against scipy."""
    path = pathlib.Path(__file__).with_name("lbfgs.py")
    if not path.exists():
        return
    spec = importlib.util.spec_from_file_location("curvlib_bench_lbfgs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    print()
    argv = sys.argv
    sys.argv = [str(path)]  # its own defaults, not this script's options
    try:
        module.main()
    finally:
        sys.argv = argv


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60, help="timed steps per optimizer")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads (default 1: CPU time is then per step)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="cpu: process CPU time (robust to other load); wall: elapsed")
    parser.add_argument("--only", nargs="*", default=None, help="subset of case labels")
    parser.add_argument("--hot-cache", action="store_true",
                        help="don't evict the CPU caches before each timed step")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    torch.set_num_threads(args.threads)

    # 64 MiB, twice this machine's last-level cache, rewritten before each timed step
    evict = None if args.hot_cache else torch.zeros(16 * 2 ** 20)
    n = sum(p.numel() for p in mlp_params())
    print(f"MLP {'-'.join(map(str, SIZES))}: {n:,} float32 parameters, CPU, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}, "
          f"{args.clock} time, median of {args.repeats} interleaved steps, "
          f"{'hot' if args.hot_cache else 'cold'} caches")
    header = (f"{'optimizer':<22}{'torch foreach':>14}{'curvlib':>10}{'ratio':>8}"
              f"{'reference':>11}{'ratio':>8}")
    print(header)
    print("-" * len(header))
    ratios = {}
    for label, (ours_cls, torch_cls, kwargs) in CASES.items():
        if args.only and label not in args.only:
            continue
        t = bench_case(ours_cls, torch_cls, kwargs, args.repeats, clock=CLOCKS[args.clock],
                       evict=evict)
        ratios[label] = t["fast"] / t["torch"]
        print(f"{label:<22}{t['torch'] * 1e3:>11.2f} ms{t['fast'] * 1e3:>7.2f} ms"
              f"{ratios[label]:>8.2f}{t['reference'] * 1e3:>8.2f} ms"
              f"{t['reference'] / t['torch']:>8.2f}")
    if ratios:
        print(f"\ncurvlib fast path / torch foreach: max ratio {max(ratios.values()):.2f}, "
              f"median {statistics.median(ratios.values()):.2f} (goal: <= 1.00)")
    run_lbfgs_benchmark()


if __name__ == "__main__":
    main()
