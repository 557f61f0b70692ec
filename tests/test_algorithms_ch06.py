"""Chapter 6's algorithms: the K-FAC and Shampoo steps written out in the chapter (cells tagged
``algorithm``) equal curvlib's optimizers, and curvlib's steps equal a dense computation of the
same preconditioner on a tiny network."""
import json
import pathlib

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from curvlib.second_order import KFAC, Shampoo

torch.set_num_threads(1)

NOTEBOOK = pathlib.Path(__file__).resolve().parent.parent / "chapters" / "06_modern_innovations.ipynb"


def algorithm_cells():
    """The source of every code cell of chapter 6 tagged ``algorithm``, executed together."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    sources = ["".join(c["source"]) for c in cells
               if c["cell_type"] == "code" and "algorithm" in c.get("metadata", {}).get("tags", [])]
    namespace = {}
    exec(compile("import torch\n" + "\n\n".join(sources), str(NOTEBOOK), "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def chapter():
    return algorithm_cells()


def tiny_net(bias=True, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 4, bias=bias), nn.Tanh(), nn.Linear(4, 3, bias=bias)).double()


def batch(seed=1, n=16):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=gen, dtype=torch.float64), torch.randint(0, 3, (n,), generator=gen)


def layer_quantities(net, x, y, u):
    """For each Linear layer: its input with a 1 appended (B x n+1), each example's output
    gradient at the targets sampled with the uniforms ``u`` (B x m), and the gradient of the
    mean loss with respect to [W | b] (m x n+1)."""
    linears = [m for m in net if isinstance(m, nn.Linear)]
    seen = []
    handles = [m.register_forward_hook(lambda m, i, o: seen.append((i[0], o))) for m in linears]
    net.eval()  # the optimizer's hooks ignore this pass (no capture, no draw from its sampler)
    try:
        out = net(x)
    finally:
        net.train()
        for h in handles:
            h.remove()
    sampled = KFAC.sample_targets(out, u)
    g = torch.autograd.grad(F.cross_entropy(out, sampled, reduction="sum"), [o for _, o in seen],
                            retain_graph=True)
    loss = F.cross_entropy(out, y)
    params = [p for m in linears for p in (m.weight, m.bias)]
    grads = torch.autograd.grad(loss, params)
    rows = []
    for i, ((a, _), gi) in enumerate(zip(seen, g)):
        a1 = torch.cat([a.detach(), torch.ones(len(a), 1, dtype=a.dtype)], 1)
        grad = torch.cat([grads[2 * i], grads[2 * i + 1][:, None]], 1)
        rows.append((a1, gi.detach(), grad))
    return linears, rows


def weights(linears):
    return [torch.cat([m.weight, m.bias[:, None]], 1).detach().clone() for m in linears]


# -- K-FAC ------------------------------------------------------------------------------
def test_kfac_step_equals_a_dense_solve_with_the_sampled_fisher():
    """Two K-FAC steps of curvlib (true Fisher, no momentum, no KL clip) on a 5-4-3 tanh
    network against the dense damped solve (G (x) A + lambda I)^-1 vec(grad), with G built
    from each example's output gradient at targets drawn as curvlib draws them."""
    net = tiny_net()
    lr, damping, decay = 0.5, 0.05, 0.8
    opt = KFAC(net, lr=lr, damping=damping, factor_decay=decay, momentum=0.0, kl_clip=None,
               inverse_interval=1, fisher="true", seed=7)
    sampler = torch.Generator().manual_seed(7)
    averages = {}
    for step in range(2):
        x, y = batch(seed=step)
        u = torch.rand(len(x), generator=sampler, dtype=torch.float64)
        linears, rows = layer_quantities(net, x, y, u)
        expected = []
        for i, (W, (a, g, grad)) in enumerate(zip(weights(linears), rows)):
            A, G = a.T @ a / len(a), g.T @ g / len(g)
            if i in averages:
                A = decay * averages[i][0] + (1 - decay) * A
                G = decay * averages[i][1] + (1 - decay) * G
            averages[i] = (A, G)
            dense = torch.kron(G, A) + damping * torch.eye(len(A) * len(G), dtype=A.dtype)
            delta = torch.linalg.solve(dense, grad.reshape(-1)).reshape(grad.shape)
            expected.append(W - lr * delta)
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
        for W, m in zip(expected, linears):
            got = torch.cat([m.weight, m.bias[:, None]], 1).detach()
            assert torch.allclose(got, W, atol=1e-10, rtol=1e-9)


def test_kfac_sampled_targets_follow_the_model():
    """Inverse-CDF sampling: the target is the first class whose cumulative probability
    exceeds u, so its frequencies are the softmax probabilities."""
    logits = torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.float64).expand(20000, 3)
    u = torch.rand(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    counts = torch.bincount(KFAC.sample_targets(logits, u), minlength=3).double() / 20000
    assert torch.allclose(counts, torch.softmax(logits[0], 0), atol=0.01)
    edge = KFAC.sample_targets(torch.zeros(2, 2, dtype=torch.float64),
                               torch.tensor([0.49, 0.51], dtype=torch.float64))
    assert edge.tolist() == [0, 1]


def test_chapter_kfac_step_equals_curvlib(chapter):
    net = tiny_net()
    lr, damping = 0.3, 0.02
    opt = KFAC(net, lr=lr, damping=damping, factor_decay=0.95, momentum=0.0, kl_clip=None,
               inverse_interval=2, fisher="true", seed=3)
    sampler = torch.Generator().manual_seed(3)
    states = [{}, {}]
    for step in range(3):
        x, y = batch(seed=10 + step)
        u = torch.rand(len(x), generator=sampler, dtype=torch.float64)
        linears, rows = layer_quantities(net, x, y, u)
        mine = [chapter["kfac_step"](W, grad, a, g, st, lr, damping, refresh=step % 2 == 0)
                for W, (a, g, grad), st in zip(weights(linears), rows, states)]
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
        for W, m in zip(mine, linears):
            got = torch.cat([m.weight, m.bias[:, None]], 1).detach()
            assert torch.allclose(got, W, atol=1e-10, rtol=1e-9), step


# -- Shampoo ----------------------------------------------------------------------------
def _dense_root(H, eps, power):
    d, Q = torch.linalg.eigh(H)
    return Q @ torch.diag((d.clamp_min(0) + eps) ** power) @ Q.T


def test_shampoo_step_equals_a_dense_kronecker_preconditioner():
    """Two steps of curvlib's Shampoo (first moment, decayed statistics, Adam grafting) on a
    bias-free 5-4-3 tanh network against the dense preconditioner
    (L^-1/4 (x) R^-1/4) vec(M) on the bias-corrected statistics, grafted to Adam's length."""
    net = tiny_net(bias=False)
    lr, beta1, beta2, eps, geps = 0.1, 0.8, 0.9, 1e-6, 1e-8
    opt = Shampoo(net.parameters(), lr=lr, beta1=beta1, beta2=beta2, epsilon=eps,
                  grafting="adam", graft_eps=geps, update_interval=1)
    stats = {}
    for step in range(1, 3):
        x, y = batch(seed=20 + step)
        params = [p for p in net.parameters()]
        grads = torch.autograd.grad(F.cross_entropy(net(x), y), params)
        expected = []
        for i, (p, g) in enumerate(zip(params, grads)):
            m_, L, R, v = stats.get(i, (0 * g, 0 * (g @ g.T), 0 * (g.T @ g), 0 * g))
            m_ = beta1 * m_ + (1 - beta1) * g
            L = beta2 * L + (1 - beta2) * g @ g.T
            R = beta2 * R + (1 - beta2) * g.T @ g
            v = beta2 * v + (1 - beta2) * g * g
            stats[i] = (m_, L, R, v)
            M = m_ / (1 - beta1 ** step)
            c = 1 - beta2 ** step
            P = torch.kron(_dense_root(L / c, eps, -0.25), _dense_root(R / c, eps, -0.25))
            D = (P @ M.reshape(-1)).reshape(M.shape)
            graft = M / ((v / c).sqrt() + geps)
            expected.append(p.detach() - lr * D * graft.norm() / D.norm())
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
        for p, e in zip(net.parameters(), expected):
            assert torch.allclose(p.detach(), e, atol=1e-10, rtol=1e-9), step


def test_shampoo_vector_gets_full_matrix_adagrad_and_sum_without_decay():
    """A bias vector with beta2 = 1 (sums, Gupta et al.) and no grafting: H^-1/2 g."""
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    opt = Shampoo([b], lr=1.0, epsilon=1e-9, grafting=None, beta2=1.0)
    H = torch.zeros(4, 4, dtype=torch.float64)
    for step in range(2):
        g = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(step))
        before = b.detach().clone()
        H = H + torch.outer(g, g)
        b.grad = g.clone()
        opt.step()
        assert torch.allclose(b.detach(), before - _dense_root(H, 1e-9, -0.5) @ g, atol=1e-8)


def test_chapter_shampoo_step_equals_curvlib(chapter):
    net = tiny_net(bias=False)
    lr, beta1, beta2, eps, geps = 0.05, 0.7, 0.95, 1e-7, 1e-8
    opt = Shampoo(net.parameters(), lr=lr, beta1=beta1, beta2=beta2, epsilon=eps,
                  grafting="adam", graft_eps=geps, update_interval=2)
    states = [{} for _ in net.parameters()]
    for step in range(3):
        x, y = batch(seed=30 + step)
        params = list(net.parameters())
        grads = torch.autograd.grad(F.cross_entropy(net(x), y), params)
        mine = [chapter["shampoo_step"](p.detach(), g, st, lr, beta1, beta2, eps, geps,
                                         refresh=step % 2 == 0)
                for p, g, st in zip(params, grads, states)]
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
        for p, e in zip(net.parameters(), mine):
            assert torch.allclose(p.detach(), e, atol=1e-10, rtol=1e-9), step


def test_the_algorithm_cells_are_short():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    sources = ["".join(c["source"]) for c in cells
               if c["cell_type"] == "code" and "algorithm" in c.get("metadata", {}).get("tags", [])]
    assert len(sources) == 2
    for src in sources:
        lines = [ln for ln in src.splitlines() if ln.strip()]
        assert 5 <= len(lines) <= 25, len(lines)
