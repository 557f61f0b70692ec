"""K-FAC and Shampoo: against dense references, on digits against SGD, and their state bytes."""
import copy

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn
from torch.nn import functional as F

from curvlib.second_order import KFAC, Shampoo, kfac_bytes, shampoo_bytes

torch.set_num_threads(1)  # the test machine is shared; tiny problems gain nothing from threads


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X = (X - X.mean(0)) / (X.std(0) + 1e-8)
    return torch.tensor(X, dtype=torch.float32), torch.tensor(y)


def deep_mlp(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(),
                         nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 10))


def train(make_opt, X, y, steps, seed=0):
    model = deep_mlp(seed)
    opt = make_opt(model)
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(X), y)
        loss.backward()
        opt.step()
    with torch.no_grad():
        loss = F.cross_entropy(model(X), y).item()
    return loss if np.isfinite(loss) else float("inf")


def state_bytes(opt):
    return sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values()
               if isinstance(v, torch.Tensor))


# -- the claim of chapter 6: both beat tuned SGD in the same number of steps -------------
def test_kfac_and_shampoo_beat_sgd_at_its_best_rate_on_digits(digits):
    """Full-batch training of a 3-hidden-layer tanh MLP for 40 steps, momentum 0.9 for all,
    each at its best rate on a half-decade grid that brackets it."""
    try:
        from curvlib.optim import SGD
    except ImportError:  # curvlib.optim.SGD is tested equal to torch.optim.SGD
        SGD = torch.optim.SGD
    X, y = digits
    steps = 40
    grids = {
        "sgd": ([0.1, 0.316, 1.0, 3.16],
                lambda lr: lambda m: SGD(m.parameters(), lr=lr, momentum=0.9)),
        "kfac": ([0.01, 0.0316, 0.1, 0.316], lambda lr: lambda m: KFAC(m, lr=lr)),
        "shampoo": ([0.00316, 0.01, 0.0316, 0.1],
                    lambda lr: lambda m: Shampoo(m.parameters(), lr=lr, momentum=0.9)),
    }
    best = {}
    for name, (lrs, make) in grids.items():
        losses = [train(make(lr), X, y, steps) for lr in lrs]
        i = int(np.argmin(losses))
        assert 0 < i < len(lrs) - 1, f"{name}: best rate {lrs[i]} at the edge of the grid {losses}"
        best[name] = losses[i]
    assert best["kfac"] < best["sgd"], best
    assert best["shampoo"] < best["sgd"], best


# -- K-FAC against its definition ------------------------------------------------------
def test_kfac_step_equals_dense_damped_kronecker_solve():
    torch.manual_seed(0)
    model = nn.Linear(5, 3).double()
    x = torch.randn(16, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (16,))
    damping = 0.1
    opt = KFAC(model, lr=1.0, damping=damping, momentum=0.0, kl_clip=None, fisher="empirical")
    before = torch.cat([model.weight, model.bias[:, None]], 1).detach().clone()
    F.cross_entropy(model(x), y).backward()
    grad = torch.cat([model.weight.grad, model.bias.grad[:, None]], 1)
    opt.step()
    after = torch.cat([model.weight, model.bias[:, None]], 1).detach()

    a = torch.cat([x, torch.ones(16, 1, dtype=x.dtype)], 1)
    with torch.no_grad():  # per-example dl_i/ds_i of the (unaveraged) cross-entropy
        g = torch.softmax(x @ before[:, :5].T + before[:, 5], 1)
        g -= F.one_hot(y, 3).double()
    A = a.T @ a / 16
    G = g.T @ g / 16
    assert torch.allclose(opt.state[model.weight]["A"], A, atol=1e-12)
    assert torch.allclose(opt.state[model.weight]["G"], G, atol=1e-12)
    fisher = torch.kron(G, A) + damping * torch.eye(18, dtype=torch.float64)
    delta = torch.linalg.solve(fisher, grad.reshape(-1)).reshape(3, 6)
    assert torch.allclose(before - after, delta, atol=1e-10)


def test_kfac_factor_moving_average_and_intervals():
    torch.manual_seed(0)
    model = nn.Linear(4, 2).double()
    opt = KFAC(model, factor_decay=0.5, inverse_interval=3)
    factors, eigvecs = [], []
    for _ in range(4):
        x = torch.randn(8, 4, dtype=torch.float64)
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        a = torch.cat([x, torch.ones(8, 1, dtype=x.dtype)], 1)
        factors.append(a.T @ a / 8)
        opt.step()
        eigvecs.append(opt.state[model.weight]["QA"].clone())
    expected = factors[0]
    for batch_factor in factors[1:]:
        expected = 0.5 * expected + 0.5 * batch_factor
    assert torch.allclose(opt.state[model.weight]["A"], expected, atol=1e-12)
    assert torch.equal(eigvecs[0], eigvecs[1]) and torch.equal(eigvecs[1], eigvecs[2])
    assert not torch.equal(eigvecs[2], eigvecs[3])  # refreshed at step 3


def test_kfac_conv_with_full_kernel_equals_linear():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, kernel_size=4).double()
    linear = nn.Linear(32, 3).double()
    with torch.no_grad():
        linear.weight.copy_(conv.weight.reshape(3, -1))
        linear.bias.copy_(conv.bias)
    x = torch.randn(10, 2, 4, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (10,))
    opts = [KFAC(conv, lr=0.3, kl_clip=None), KFAC(linear, lr=0.3, kl_clip=None)]
    for _ in range(3):
        for opt, out in ((opts[0], lambda: conv(x).flatten(1)), (opts[1], lambda: linear(x.flatten(1)))):
            opt.zero_grad()
            F.cross_entropy(out(), y).backward()
            opt.step()
    assert torch.allclose(conv.weight.reshape(3, -1), linear.weight, atol=1e-12)
    assert torch.allclose(conv.bias, linear.bias, atol=1e-12)


def test_kfac_trains_a_conv_net_with_batch_norm(digits):
    X, y = digits
    images = X[:256].reshape(-1, 1, 8, 8)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Flatten(), nn.Linear(256, 10))
    opt = KFAC(model, lr=0.03)
    bn_weight = model[1].weight.detach().clone()
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = F.cross_entropy(model(images), y[:256])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    assert not torch.equal(model[1].weight, bn_weight)  # batch norm took plain SGD steps
    assert "A" in opt.state[model[0].weight] and "A" not in opt.state[model[1].weight]


# -- Shampoo against its definition ----------------------------------------------------
def _power(M, p):
    return torch.from_numpy(np.real(scipy.linalg.fractional_matrix_power(M.numpy(), p)))


def test_shampoo_matrix_step_is_inverse_fourth_roots():
    torch.manual_seed(0)
    W = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    eps = 1e-3
    opt = Shampoo([W], lr=1.0, epsilon=eps, grafting=None)
    L = torch.zeros(4, 4, dtype=torch.float64)
    R = torch.zeros(3, 3, dtype=torch.float64)
    for _ in range(2):
        G = torch.randn(4, 3, dtype=torch.float64)
        W.grad = G.clone()
        before = W.detach().clone()
        opt.step()
        L += G @ G.T
        R += G.T @ G
        expected = _power(L + eps * torch.eye(4, dtype=L.dtype), -0.25) @ G @ _power(
            R + eps * torch.eye(3, dtype=L.dtype), -0.25)
        assert torch.allclose(before - W.detach(), expected, atol=1e-10)


def test_shampoo_tensor_step_uses_exponent_minus_one_over_2k():
    torch.manual_seed(0)
    T = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    eps = 1e-2
    opt = Shampoo([T], lr=1.0, epsilon=eps, grafting=None)
    G = torch.randn(2, 3, 4, dtype=torch.float64)
    T.grad = G.clone()
    before = T.detach().clone()
    opt.step()
    roots = []
    for i, n in enumerate(G.shape):
        unfolded = G.movedim(i, 0).reshape(n, -1)
        roots.append(_power(unfolded @ unfolded.T + eps * torch.eye(n, dtype=G.dtype), -1 / 6))
    dense = torch.kron(torch.kron(roots[0], roots[1]), roots[2])
    expected = (dense @ G.reshape(-1)).reshape(G.shape)
    assert torch.allclose(before - T.detach(), expected, atol=1e-10)


@pytest.mark.parametrize("grafting", ["adagrad", "sgd"])
def test_shampoo_grafting_takes_the_norm_of_the_grafted_step(grafting):
    torch.manual_seed(0)
    W = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    opt = Shampoo([W], lr=0.1, grafting=grafting, graft_eps=1e-10)
    total = torch.zeros_like(W)
    for _ in range(3):
        G = torch.randn(5, 4, dtype=torch.float64)
        total += G * G
        W.grad = G.clone()
        before = W.detach().clone()
        opt.step()
        graft = G / (total.sqrt() + 1e-10) if grafting == "adagrad" else G
        step = before - W.detach()
        assert torch.linalg.vector_norm(step).item() == pytest.approx(
            0.1 * torch.linalg.vector_norm(graft).item(), rel=1e-12)


def test_shampoo_skips_dimensions_above_the_cap():
    W = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    opt = Shampoo([W], max_preconditioner_dim=4, grafting=None, epsilon=1e-3)
    G = torch.randn(6, 3, dtype=torch.float64)
    W.grad = G.clone()
    before = W.detach().clone()
    opt.step()
    assert set(k for k in opt.state[W] if k[0] in "HP") == {"H1", "P1"}
    R = _power(G.T @ G + 1e-3 * torch.eye(3, dtype=G.dtype), -0.25)
    assert torch.allclose(before - W.detach(), 0.01 * G @ R, atol=1e-10)


# -- memory: the calculators agree with what the optimizers hold -----------------------
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_kfac_bytes_match_state(momentum, digits):
    X, y = digits
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    opt = KFAC(model, momentum=momentum)
    F.cross_entropy(model(X[:64]), y[:64]).backward()
    opt.step()
    held = state_bytes(opt)
    assert held == kfac_bytes(model, momentum=momentum > 0)
    assert held == kfac_bytes([(64, 32), (32, 10)], momentum=momentum > 0)
    a, g = 65, 32  # first layer by hand: factors, eigenvectors, eigenvalues
    first = 2 * a * a + a + 2 * g * g + g
    assert kfac_bytes([(64, 32)], momentum=False) == 4 * first
    assert kfac_bytes([(64, 32)], momentum=False, dtype=torch.float64) == 8 * first
    assert kfac_bytes([(64, 32)], momentum=False, bias=False) == 4 * (2 * 64 * 64 + 64 + 2 * g * g + g)


def test_kfac_bytes_conv_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 10))
    opt = KFAC(model)
    F.cross_entropy(model(torch.randn(8, 1, 8, 8)), torch.randint(0, 10, (8,))).backward()
    opt.step()
    assert state_bytes(opt) == kfac_bytes(model) == kfac_bytes([(9, 4), (144, 10)])


@pytest.mark.parametrize("grafting,momentum,cap", [("adagrad", 0.0, 1024), ("sgd", 0.9, 1024),
                                                   (None, 0.0, 40), ("adagrad", 0.9, 16)])
def test_shampoo_bytes_match_state(grafting, momentum, cap, digits):
    X, y = digits
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    opt = Shampoo(model.parameters(), momentum=momentum, grafting=grafting,
                  max_preconditioner_dim=cap)
    F.cross_entropy(model(X[:64]), y[:64]).backward()
    opt.step()
    held = state_bytes(opt)
    kw = dict(grafting=grafting, momentum=momentum > 0, max_preconditioner_dim=cap)
    assert held == shampoo_bytes(model, **kw)
    assert held == shampoo_bytes([(64, 32), (32, 10)], **kw)
    if cap == 1024 and grafting is None:
        assert held == 4 * (2 * (32 ** 2 + 64 ** 2) + 2 * 32 ** 2 + 2 * (10 ** 2 + 32 ** 2) + 2 * 10 ** 2)


# -- drop-in behaviour ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["kfac", "shampoo"])
def test_state_dict_round_trip_and_scheduler(name, digits):
    X, y = digits
    X, y = X[:128], y[:128]

    def make(model):
        return KFAC(model, inverse_interval=2) if name == "kfac" else Shampoo(
            model.parameters(), momentum=0.9, update_interval=2)

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 10))
    opt = make(model)

    def run(model, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            F.cross_entropy(model(X), y).backward()
            opt.step()

    run(model, opt, 3)
    twin = copy.deepcopy(model)
    twin_opt = make(twin)
    twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # as if saved to disk
    run(model, opt, 3)
    run(twin, twin_opt, 3)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    lr = opt.param_groups[0]["lr"]
    run(model, opt, 1)
    sched.step()
    assert opt.param_groups[0]["lr"] == lr / 2


def test_closure_returns_loss(digits):
    X, y = digits
    model = deep_mlp(0)
    for opt in (KFAC(model), Shampoo(model.parameters())):
        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(model(X[:32]), y[:32])
            loss.backward()
            return loss
        assert torch.isfinite(opt.step(closure))
        if isinstance(opt, KFAC):
            opt.remove_hooks()


def test_bad_input():
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="model has no parameters"):
        KFAC(nn.ReLU())
    with pytest.raises(TypeError, match="model"):
        KFAC(model.parameters())
    with pytest.raises(ValueError, match="lr must be positive"):
        KFAC(model, lr=-1)
    with pytest.raises(ValueError, match="damping"):
        KFAC(model, damping=0)
    with pytest.raises(ValueError, match="factor_decay"):
        KFAC(model, factor_decay=1.0)
    with pytest.raises(ValueError, match="inverse_interval"):
        KFAC(model, inverse_interval=0)
    with pytest.raises(ValueError, match="lr must be positive"):
        Shampoo(model.parameters(), lr=0)
    with pytest.raises(ValueError, match="grafting"):
        Shampoo(model.parameters(), grafting="adamw")
    with pytest.raises(ValueError, match="beta2"):
        Shampoo(model.parameters(), beta2=0.0)
    with pytest.raises(ValueError, match="empty"):
        Shampoo([])
    with pytest.raises(ValueError, match="layers must not be empty"):
        kfac_bytes([])
    with pytest.raises(ValueError, match="layers entry"):
        shampoo_bytes([(0, 3)])
    with pytest.raises(ValueError, match="pairs"):
        kfac_bytes([(1, 2, 3)])
    with pytest.raises(TypeError, match="layers"):
        shampoo_bytes(5)
    with pytest.raises(TypeError, match="dtype"):
        kfac_bytes([(3, 2)], dtype="float32")
