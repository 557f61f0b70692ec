"""The numpy layers of curvlib work where torch cannot be imported.

A child interpreter gets an import hook that refuses ``torch`` (and every ``torch.*``), then
imports curvlib and runs the numpy layers: ``minimize`` with every method, the landscapes,
the rules, the table of methods, the schedules, the memory calculators and the run rules.
"""
import subprocess
import sys
import textwrap

BLOCK_TORCH = """
import sys

class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} is blocked for this test")
        return None

sys.meta_path.insert(0, BlockTorch())
"""

NUMPY_LAYERS = """
import numpy as np

try:
    import torch  # noqa: F401
except ImportError:
    pass
else:
    raise AssertionError("the hook did not block torch")

import curvlib
from curvlib import landscapes, memory, methods, minimize, quasi_newton, rules, runs, schedules

usable = [n for n, m in methods.METHODS.items() if m.step is not None]
assert set(usable) == {"sgd", "gd", "momentum", "nesterov", "adagrad", "rmsprop", "adam",
                       "adamw", "lbfgs", "newton"}, usable
f = landscapes.Rosenbrock()
for name in usable:
    res = minimize(f, [-1.2, 1.0], method=name, maxiter=200, gtol=1e-6)
    assert res.nit > 0 and np.all(np.isfinite(res.path)), name
    assert res.fun < f([-1.2, 1.0]), (name, res.fun)
    print(name, res.nit, res.fun)
assert minimize(f, [-1.2, 1.0], method="lbfgs").success
assert minimize(f, [-1.2, 1.0], method="newton", line_search_fn="backtracking").success

for cls in (landscapes.Quadratic, landscapes.Beale, landscapes.Saddle):
    g = cls()
    assert np.all(np.isfinite(g.grad(g.start))) and g.hess(g.start).shape == (2, 2)

init, step = methods.make_rule("adam", lr=0.1)
x = np.array([1.0, -2.0])
state = init(x)
step(x, 2 * x, state)
assert np.allclose(x, [0.9, -1.9])
s = rules.init_sgd(x)
rules.sgd(x, 2 * x, s, lr=0.1, momentum=0.9)

H = quasi_newton.bfgs_inverse_update(np.eye(2), np.array([1.0, 0.0]), np.array([2.0, 0.5]))
assert np.allclose(H @ np.array([2.0, 0.5]), [1.0, 0.0])  # the secant equation

assert schedules.cosine(50, base_lr=0.1, total_steps=100) == 0.05
assert len(schedules.lr_curve("warmup_cosine", 10, base_lr=0.1, total_steps=10,
                              warmup_steps=2)) == 10
assert memory.optimizer_state_bytes("adam", 1000, n_tensors=1) == 8004
assert memory.optimizer_state_bytes("lbfgs", 10, history_size=3) > 0
assert memory.hessian_bytes(10) == 400

assert runs.divergence_step([1.0, 2.0, float("nan")]) == 2
with runs.single_thread():
    assert minimize(f, [-1.2, 1.0], method="adam", lr=0.01, maxiter=5).nit == 5

assert "torch" not in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))
print("ok")
"""


def run_without_torch(code):
    script = textwrap.dedent(BLOCK_TORCH) + "import sys\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600)


def test_the_hook_blocks_torch():
    out = run_without_torch("import torch")
    assert out.returncode != 0 and "torch is blocked" in out.stderr


def test_numpy_layers_run_without_torch():
    out = run_without_torch(NUMPY_LAYERS)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")
    assert "lbfgs" in out.stdout and "newton" in out.stdout


def test_torch_layers_say_that_they_need_torch():
    out = run_without_torch("import curvlib\ncurvlib.optim")
    assert out.returncode != 0 and "torch is blocked" in out.stderr
