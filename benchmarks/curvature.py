"""What curvature costs: HVPs against gradients, Lanczos against power iteration, Hutchinson.

Three measurements on MLPs trained on scikit-learn's digits (1797 standardized 8x8 images):

1. The cost of one Hessian-vector product as a multiple of one gradient of the same loss,
   for each way of computing it (curvlib.curvature.hvp with method="reverse" and
   "forward", and hvp_operator, which builds the gradient graph once). Goal: <= 3.
2. How many products Lanczos (full reorthogonalisation) and power iteration (PyHessian's
   method) need before the top eigenvalue is within 1e-4 relative of the dense answer
   (torch.linalg.eigvalsh of the dense Hessian), over several random start vectors.
   Goal: Lanczos at least 5x fewer.
3. Hutchinson's trace estimate: the measured relative error against the number of probes,
   beside the standard error the estimator reports.

Timing uses this process's CPU time on one thread (other processes on a shared machine do
not inflate it); contenders are timed in turns within each repeat so a burst of load falls
on all alike, and the median is printed.

Run:  python benchmarks/curvature.py [--repeats 30] [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F

from curvlib import curvature as C, spectrum


def digits(dtype):
    X, y = load_digits(return_X_y=True)
    X = (X - X.mean(0)) / (X.std(0) + 1e-8)
    return torch.tensor(X, dtype=dtype), torch.tensor(y)


def trained_mlp(hidden, dtype, steps=300, seed=0):
    """A tanh MLP 64-hidden-...-10 trained full-batch with Adam (lr 1e-2)."""
    X, y = digits(dtype)
    torch.manual_seed(seed)
    sizes = (64, *hidden, 10)
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.Tanh()]
    model = nn.Sequential(*layers[:-1]).to(dtype)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        opt.step()
    return model, X, y


def cpu_time(fn, repeats, inner):
    out = []
    for _ in range(repeats):
        t = time.process_time()
        for _ in range(inner):
            fn()
        out.append((time.process_time() - t) / inner)
    return out


def hvp_cost(repeats):
    print("1. Cost of one Hessian-vector product, in gradients of the same loss "
          "(float32, full digits batch, median CPU time on one thread)")
    print(f"   {'model':>16s} {'n':>7s} {'gradient':>9s} {'reverse':>8s} {'forward':>8s} "
          f"{'operator':>8s}")
    for hidden in [(32,), (128, 128), (512, 512)]:
        model, X, y = trained_mlp(hidden, torch.float32, steps=20)
        f, w = C.flat_loss(model, F.cross_entropy, X, y)
        v = torch.randn(w.shape, generator=torch.Generator().manual_seed(0))
        op = C.hvp_operator(f, w)
        grad = torch.func.grad(f)

        def gradient():
            wg = w.detach().requires_grad_(True)
            return torch.autograd.grad(f(wg), wg)[0]

        contenders = {
            "gradient": gradient,
            "reverse": lambda: C.hvp(f, w, v, method="reverse"),
            "forward": lambda: C.hvp(f, w, v, method="forward"),
            "operator": lambda: op(v),
            "func.grad": lambda: grad(w),
        }
        for fn in contenders.values():  # warm up
            fn()
        times = {k: [] for k in contenders}
        big = w.numel() > 100_000
        inner = 1 if big else 10
        for r in range(max(5, repeats // 3) if big else repeats):
            order = list(contenders) if r % 2 == 0 else list(contenders)[::-1]
            for k in order:
                times[k] += cpu_time(contenders[k], 1, inner)
        med = {k: statistics.median(t) for k, t in times.items()}
        g = med["gradient"]
        name = "-".join(str(h) for h in (64, *hidden, 10))
        print(f"   {name:>16s} {w.numel():7d} {g * 1e3:7.2f}ms {med['reverse'] / g:7.2f}x "
              f"{med['forward'] / g:7.2f}x {med['operator'] / g:7.2f}x")
    print("   reverse = double backward from scratch (curvlib's hvp default); forward = jvp of "
          "grad;\n   operator = one backward through a stored gradient graph (hvp_operator, "
          "used by Lanczos,\n   Hutchinson and SLQ). Goal: an HVP costs at most 3 gradients.")


def first_within(estimates, truth, rtol):
    """1-based index after which every estimate is within rtol of truth (None if never)."""
    ok = [abs(e - truth) <= rtol * abs(truth) for e in estimates]
    for i in range(len(ok)):
        if all(ok[i:]):
            return i + 1
    return None


def lanczos_vs_power(f, w, H, seeds, max_power, rtol=1e-4, settle=30):
    print("\n2. Products to reach 1e-4 relative accuracy on the top Hessian eigenvalue "
          "(float64, trained 64-32-10 tanh MLP, full digits batch)")
    lam = torch.linalg.eigvalsh(H)
    top = lam[-1].item()
    print(f"   n = {w.numel()}, loss = {f(w).item():.4f}, dense spectrum: lambda_max = {top:.6g}, "
          f"lambda_2 = {lam[-2].item():.6g}, lambda_min = {lam[0].item():.3g}, "
          f"{int((lam < 0).sum())} negative")
    op = C.hvp_operator(f, w)
    rows = []
    for seed in range(seeds):
        v0 = torch.randn(w.shape, generator=torch.Generator().manual_seed(seed), dtype=w.dtype)
        # estimates after each product, until `settle` products in a row are within rtol
        ritz, inside = [], 0
        for alpha, beta, _, _ in spectrum._lanczos_steps(op, v0, 300):
            ritz.append(spectrum._ritz(alpha, beta)[0][-1].item())
            inside = inside + 1 if abs(ritz[-1] - top) <= rtol * top else 0
            if inside >= settle:
                break
        rayleigh, v, inside = [], v0 / v0.norm(), 0
        for _ in range(max_power):
            hv = op(v)
            rayleigh.append(torch.dot(v, hv).item())
            v = hv / hv.norm()
            inside = inside + 1 if abs(rayleigh[-1] - top) <= rtol * top else 0
            if inside >= settle:
                break
        m_l = first_within(ritz, top, rtol)
        m_p = first_within(rayleigh, top, rtol) if inside >= settle else None
        # the methods' own stopping rules
        run_l = C.lanczos(op, v0, 200, tol=1e-4)
        run_p = C.power_iteration(op, v0, max_power, tol=1e-4)
        err_l = abs(run_l.values[0].item() - top) / top
        err_p = abs(run_p.values[0].item() - top) / top
        rows.append((seed, m_l, m_p, run_l.matvecs, err_l, run_p.matvecs, err_p))
        print(f"   start {seed}: Lanczos {m_l:4d}, power {m_p if m_p else f'>{max_power}':>5}  |"
              f"  own stopping (tol 1e-4): Lanczos {run_l.matvecs:3d} products, error {err_l:.1e};"
              f" power {run_p.matvecs:4d} products, error {err_p:.1e}")
    ml = statistics.median(r[1] for r in rows)
    mp = statistics.median(r[2] if r[2] else max_power for r in rows)
    print(f"   median products to 1e-4: Lanczos {ml:g}, power iteration {mp:g}  ->  "
          f"Lanczos needs {mp / ml:.1f}x fewer (goal >= 5x); "
          f"|lambda_2/lambda_1| = {lam[-2].item() / top:.4f}")


def hutchinson_error(f, w, H, seeds):
    print("\n3. Hutchinson trace estimate against the number of Rademacher probes "
          "(float64, same trained MLP)")
    trace = torch.trace(H).item()
    print(f"   exact trace (dense) = {trace:.6g}; {seeds} seeds per row")
    print(f"   {'probes':>6s} {'RMS rel. error':>15s} {'mean reported SE/trace':>23s} "
          f"{'|err| < 2 SE':>13s} {'RMS x sqrt(s)':>14s}")
    for s in (10, 30, 100, 300):
        errs, ses, cover = [], [], 0
        for seed in range(seeds):
            mean, se = C.hutchinson_trace(f, w, s, seed=1000 * s + seed)
            errs.append((mean - trace) / trace)
            ses.append(se / abs(trace))
            cover += abs(mean - trace) < 2 * se
        rms = float(np.sqrt(np.mean(np.square(errs))))
        print(f"   {s:6d} {rms:15.4f} {np.mean(ses):23.4f} {cover:>9d}/{seeds:<3d} "
              f"{rms * np.sqrt(s):14.3f}")
    print("   the error falls as 1/sqrt(s) (last column roughly constant) and the reported "
          "standard error tracks it")


def parse_output(text):
    """The numbers of a saved run of this script (its printed text): ``{"hvp": {model: {"n",
    "gradient_ms", "reverse", "forward", "operator"}}, "lanczos_median", "power_median",
    "lanczos_ratio", "hutchinson": {probes: {"rms", "se", "covered", "seeds", "rms_sqrt_s"}}}``.
    Appendix A3 quotes a committed run through it (timings are never re-measured there)."""
    import re
    out = {"hvp": {}, "hutchinson": {}}
    for m in re.finditer(r"^\s+(\d+(?:-\d+)+)\s+(\d+)\s+([\d.]+)ms\s+([\d.]+)x\s+([\d.]+)x\s+([\d.]+)x",
                         text, re.M):
        out["hvp"][m[1]] = {"n": int(m[2]), "gradient_ms": float(m[3]), "reverse": float(m[4]),
                            "forward": float(m[5]), "operator": float(m[6])}
    m = re.search(r"median products to 1e-4: Lanczos ([\d.]+), power iteration ([\d.]+)\s+->\s+"
                  r"Lanczos needs ([\d.]+)x fewer", text)
    if m:
        out["lanczos_median"], out["power_median"], out["lanczos_ratio"] = map(float, m.groups())
    for m in re.finditer(r"^\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)/(\d+)\s+([\d.]+)\s*$", text, re.M):
        out["hutchinson"][int(m[1])] = {"rms": float(m[2]), "se": float(m[3]), "covered": int(m[4]),
                                        "seeds": int(m[5]), "rms_sqrt_s": float(m[6])}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="fewer seeds and repeats")
    args = parser.parse_args()
    torch.set_num_threads(1)
    t = time.perf_counter()
    hvp_cost(5 if args.quick else args.repeats)
    model, X, y = trained_mlp((32,), torch.float64)
    f, w = C.flat_loss(model, F.cross_entropy, X, y)
    H = C.hessian(f, w)
    lanczos_vs_power(f, w, H, 2 if args.quick else 5, max_power=3000)
    hutchinson_error(f, w, H, 4 if args.quick else 10)
    print(f"\n(total {time.perf_counter() - t:.0f} s wall)")


if __name__ == "__main__":
    main()
