"""L-BFGS: function evaluations against scipy, time per step against torch.optim.LBFGS.

1. **Evaluations.** ``curvlib.minimize(method="lbfgs")`` against
   ``scipy.optimize.minimize(method="L-BFGS-B")`` on Rosenbrock from (-1.2, 1) and on
   full-batch logistic regression of scikit-learn's breast-cancer set (standardised features
   plus a bias, L2 term 1e-3/2 |w|^2, from w = 0). Both stop when the gradient's infinity norm
   is <= gtol (scipy's ``ftol`` test is switched off so that it too runs to the gradient
   tolerance) and both keep the same number m of pairs (scipy's ``maxcor``). Printed: nfev and
   nit of each and the ratio nfev(curvlib) / nfev(scipy) (<= 1 means curvlib needs no more).
2. **A wider suite**, to show that the settings were not fitted to those two problems: eleven
   problems (the two above, Rosenbrock from two more starts, Beale from two starts, extended
   Rosenbrock in 10-D, a 50-D quadratic with condition number 1e3, logistic regression with
   L2 terms 1e-5 and 1e-1, softmax regression on digits) at m in {10, 100} and gtol in
   {1e-5, 1e-8}: how often curvlib needs no more evaluations, and the geometric mean ratio.
3. **Time per step** of ``curvlib.optim.LBFGS`` against ``torch.optim.LBFGS`` with the same
   settings, on logistic regression (31 parameters, a cheap closure, so the optimizer's own
   overhead shows) and on an MLP on digits (64-32-10, 2,410 parameters): one ``step()`` with
   ``max_iter=20`` and no line search (20 closure calls in both), and one with the strong-Wolfe
   line search, timed per closure call because the two line searches call the closure a
   different number of times. CPU time of this process on one thread, contenders timed in
   alternating turns, median over repeats; ratio curvlib / torch (< 1 means curvlib is faster).

Run:  python benchmarks/lbfgs.py [--repeats 30]
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import scipy.optimize
import torch
from sklearn.datasets import load_breast_cancer, load_digits

from curvlib import minimize
from curvlib.landscapes import Beale, Rosenbrock
from curvlib.optim import LBFGS


# --------------------------------------------------------------------------------------
# numpy problems
# --------------------------------------------------------------------------------------
def breast_cancer(bias=True):
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    return (np.hstack([X, np.ones((len(X), 1))]) if bias else X), y.astype(float)


def logistic_regression(l2=1e-3):
    X, y = breast_cancer()

    def fun(w):
        z = X @ w
        p = 1.0 / (1.0 + np.exp(-z))
        return (np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * w @ w,
                X.T @ (p - y) / len(y) + l2 * w)
    return fun, np.zeros(X.shape[1])


def extended_rosenbrock(n=10):
    def fun(x):
        r = x[1:] - x[:-1] ** 2
        g = np.zeros_like(x)
        g[:-1] += -400 * x[:-1] * r - 2 * (1 - x[:-1])
        g[1:] += 200 * r
        return float(np.sum(100 * r * r + (1 - x[:-1]) ** 2)), g
    return fun, -np.ones(n)


def quadratic(n=50, kappa=1e3, seed=0):
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    A = Q @ np.diag(np.logspace(0, math.log10(kappa), n)) @ Q.T
    b = rng.standard_normal(n)
    return (lambda x: (0.5 * x @ A @ x - b @ x, A @ x - b)), np.zeros(n)


def softmax_regression(l2=1e-3):
    X, y = load_digits(return_X_y=True)
    X, Y = X / 16.0, np.eye(10)[y]

    def fun(w):
        Z = X @ w.reshape(64, 10)
        Z -= Z.max(1, keepdims=True)
        P = np.exp(Z)
        P /= P.sum(1, keepdims=True)
        f = -np.mean(np.sum(Y * np.log(P), 1)) + 0.5 * l2 * w @ w
        return f, (X.T @ (P - Y) / len(y)).ravel() + l2 * w
    return fun, np.zeros(640)


def landscape(f, start):
    return f.value_and_grad, np.array(start, dtype=float)


TARGETS = {"Rosenbrock from (-1.2, 1)": lambda: landscape(Rosenbrock(), [-1.2, 1.0]),
           "logistic regression, breast cancer": logistic_regression}
SUITE = {**TARGETS,
         "Rosenbrock from (2, -1)": lambda: landscape(Rosenbrock(), [2.0, -1.0]),
         "Rosenbrock from (-1.5, 2.5)": lambda: landscape(Rosenbrock(), [-1.5, 2.5]),
         "Beale from (1, 1)": lambda: landscape(Beale(), [1.0, 1.0]),
         "Beale from (-1, -1)": lambda: landscape(Beale(), [-1.0, -1.0]),
         "extended Rosenbrock, n = 10": extended_rosenbrock,
         "quadratic, n = 50, kappa = 1e3": quadratic,
         "logistic regression, L2 1e-5": lambda: logistic_regression(1e-5),
         "logistic regression, L2 1e-1": lambda: logistic_regression(1e-1),
         "softmax regression, digits": softmax_regression}


def compare(make, m, gtol):
    """(curvlib result, scipy result) on one problem."""
    fun, x0 = make()
    with np.errstate(over="ignore"):
        ours = minimize(fun, x0, jac=True, method="lbfgs", history_size=m, gtol=gtol,
                        maxiter=10_000)
        ref = scipy.optimize.minimize(fun, x0, jac=True, method="L-BFGS-B",
                                      options=dict(maxcor=m, gtol=gtol, ftol=0.0,
                                                   maxiter=10_000, maxfun=100_000))
    return ours, ref


def evaluations(gtols=(1e-5, 1e-8), ms=(10, 100)):
    print("1. Function evaluations to reach |grad|_inf <= gtol, curvlib.minimize(method='lbfgs')"
          "\n   vs scipy L-BFGS-B (same m = maxcor; scipy's ftol test off)")
    print(f"   {'problem':38s} {'m':>4s} {'gtol':>6s} {'curvlib nfev/nit':>17s} "
          f"{'scipy nfev/nit':>15s} {'ratio':>6s}")
    for name, make in TARGETS.items():
        for m in ms:
            for gtol in gtols:
                ours, ref = compare(make, m, gtol)
                ok = ours.success and np.abs(ref.jac).max() <= gtol
                print(f"   {name:38s} {m:4d} {gtol:6.0e} {ours.nfev:9d}/{ours.nit:<7d} "
                      f"{ref.nfev:8d}/{ref.nit:<6d} {ours.nfev / ref.nfev:6.3f}"
                      + ("" if ok else "  (a run did not reach gtol)"))


def suite(gtols=(1e-5, 1e-8), ms=(10, 100)):
    ratios, neither, only_scipy, only_curvlib = [], [], 0, 0
    for name, make in SUITE.items():
        for m in ms:
            for gtol in gtols:
                ours, ref = compare(make, m, gtol)
                scipy_ok = np.abs(ref.jac).max() <= gtol
                if ours.success and scipy_ok:
                    ratios.append(ours.nfev / ref.nfev)
                elif not ours.success and not scipy_ok:
                    neither.append(f"{name}, m = {m}, gtol = {gtol:.0e}")
                elif scipy_ok:
                    only_scipy += 1
                else:
                    only_curvlib += 1
    ratios = np.array(ratios)
    runs = len(SUITE) * len(ms) * len(gtols)
    print(f"\n2. Suite of {len(SUITE)} problems x m in {ms} x gtol in {gtols} = {runs} runs.")
    print(f"   Both reach gtol in {len(ratios)}: curvlib needs no more evaluations in "
          f"{int(np.sum(ratios <= 1))}, geometric mean ratio {np.exp(np.mean(np.log(ratios))):.3f}"
          f" (min {ratios.min():.2f}, max {ratios.max():.2f}).")
    print(f"   Only scipy reaches gtol: {only_scipy}; only curvlib: {only_curvlib}; neither "
          f"(the line search runs out of floating-point precision): {len(neither)}"
          + "".join(f"\n     {case}" for case in neither))


# --------------------------------------------------------------------------------------
# torch: time per step
# --------------------------------------------------------------------------------------
def torch_logreg():
    X, y = breast_cancer(bias=False)
    X, y = torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    torch.manual_seed(0)
    model = torch.nn.Linear(30, 1)
    return model, lambda: torch.nn.functional.binary_cross_entropy_with_logits(model(X).squeeze(1), y)


def torch_mlp():
    X, y = load_digits(return_X_y=True)
    X, y = torch.tensor(X / 16.0, dtype=torch.float32), torch.tensor(y)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))
    return model, lambda: torch.nn.functional.cross_entropy(model(X), y)


def time_steps(make, settings, repeats):
    """Median CPU seconds per step() (or per closure call) of curvlib and torch LBFGS."""
    runs = {}
    for name, cls in (("curvlib", LBFGS), ("torch", torch.optim.LBFGS)):
        model, loss_fn = make()
        opt = cls(model.parameters(), **settings)
        calls = [0]

        def closure(opt=opt, loss_fn=loss_fn, calls=calls):
            calls[0] += 1
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            return loss
        init = [p.detach().clone() for p in model.parameters()]
        runs[name] = (model, opt, closure, calls, init)
    times = {name: [] for name in runs}
    per_call = {name: [] for name in runs}
    for r in range(repeats + 2):
        order = list(runs) if r % 2 == 0 else list(runs)[::-1]
        for name in order:
            model, opt, closure, calls, init = runs[name]
            with torch.no_grad():  # the same start and a fresh memory every time
                for p, p0 in zip(model.parameters(), init):
                    p.copy_(p0)
            opt.state.clear()
            calls[0] = 0
            t0 = time.process_time()
            opt.step(closure)
            dt = time.process_time() - t0
            if r >= 2:  # two warm-up rounds
                times[name].append(dt)
                per_call[name].append(dt / calls[0])
    return ({k: statistics.median(v) for k, v in times.items()},
            {k: statistics.median(v) for k, v in per_call.items()})


def timing(repeats=30):
    torch.set_num_threads(1)
    print("\n3. Time per step, curvlib.optim.LBFGS vs torch.optim.LBFGS "
          "(float32, CPU time, 1 thread, median)")
    for pname, make in (("logistic regression (31 params)", torch_logreg),
                        ("MLP on digits (2,410 params)", torch_mlp)):
        step, _ = time_steps(make, dict(max_iter=20, history_size=10), repeats)
        print(f"   {pname:34s} step(max_iter=20), no line search: curvlib {step['curvlib'] * 1e3:7.2f} ms"
              f"  torch {step['torch'] * 1e3:7.2f} ms  ratio {step['curvlib'] / step['torch']:.2f}")
        _, call = time_steps(make, dict(max_iter=20, history_size=10,
                                        line_search_fn="strong_wolfe"), repeats)
        print(f"   {pname:34s} strong Wolfe, per closure call:  curvlib {call['curvlib'] * 1e3:7.3f} ms"
              f"  torch {call['torch'] * 1e3:7.3f} ms  ratio {call['curvlib'] / call['torch']:.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    evaluations()
    suite()
    timing(args.repeats)


if __name__ == "__main__":
    main()
