"""curvlib.memory: byte counts against real torch optimizers, parameter counts against modules."""

import pytest
import torch
from torch import nn

from curvlib import memory as M

# --------------------------------------------------------------------------------------
# Hessian bytes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype,b", [("float16", 2), ("bf16", 2), ("float32", 4), ("fp64", 8),
                                     (torch.float64, 8), (torch.bfloat16, 2)])
def test_hessian_bytes_matches_a_real_dense_matrix(dtype, b):
    n = 37
    tdtype = dtype if isinstance(dtype, torch.dtype) else getattr(
        torch, {"bf16": "bfloat16", "fp64": "float64"}.get(dtype, dtype))
    H = torch.zeros(n, n, dtype=tdtype)
    assert M.hessian_bytes(n, dtype) == H.nbytes == n * n * b
    iu = torch.triu_indices(n, n)
    assert M.hessian_bytes(n, dtype, symmetric=True) == H[iu[0], iu[1]].nbytes


def test_lecture_resnet50_500TB_claim_checked_by_arithmetic():
    n = M.MODELS["ResNet-50"].n_params
    full = M.hessian_bytes(n, "float32")
    assert full == 4 * 25_557_032 ** 2 == 2_612_647_538_596_096
    # Our figure: 2.61 PB in float32, 1.31 PB for one triangle; the lecture's 500 TB is 5.2x low.
    assert M.format_bytes(full) == "2.61 PB"
    assert M.format_bytes(M.hessian_bytes(n, "float32", symmetric=True)) == "1.31 PB"
    assert full / 500e12 == pytest.approx(5.2253, rel=1e-4)
    # Even fp16 (1.31 PB) is more than twice the lecture's figure.
    assert M.hessian_bytes(n, "float16") > 2 * 500e12


# --------------------------------------------------------------------------------------
# Optimizer state: predicted against measured
# --------------------------------------------------------------------------------------
def _mlp(dtype):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 9), nn.Tanh(), nn.Linear(9, 4), nn.Tanh(),
                         nn.Linear(4, 1)).to(dtype)  # 6 tensors


def _data(dtype):
    g = torch.Generator().manual_seed(1)
    return torch.randn(40, 6, generator=g, dtype=dtype), torch.randn(40, 1, generator=g, dtype=dtype)


def _run(opt_ctor, dtype, steps=3):
    model = _mlp(dtype)
    X, y = _data(dtype)
    opt = opt_ctor(model.parameters())

    def closure():
        opt.zero_grad()
        loss = ((model(X) - y) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
    n = sum(p.numel() for p in model.parameters())
    return opt, n, len(list(model.parameters()))


CASES = [
    ("sgd", torch.optim.SGD, dict(lr=0.1)),
    ("sgd", torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=1e-3)),
    ("momentum", torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
    ("nesterov", torch.optim.SGD, dict(lr=0.1, momentum=0.5, nesterov=True)),
    ("sgd", torch.optim.SGD, dict(lr=0.1, momentum=0.5, nesterov=True)),
    ("adagrad", torch.optim.Adagrad, dict(lr=0.1)),
    ("rmsprop", torch.optim.RMSprop, dict(lr=0.01)),
    ("rmsprop", torch.optim.RMSprop, dict(lr=0.01, momentum=0.9)),
    ("rmsprop", torch.optim.RMSprop, dict(lr=0.01, centered=True)),
    ("rmsprop", torch.optim.RMSprop, dict(lr=0.01, momentum=0.9, centered=True)),
    ("adam", torch.optim.Adam, dict(lr=1e-3)),
    ("adam", torch.optim.Adam, dict(lr=1e-3, amsgrad=True, betas=(0.8, 0.99))),
    ("adamw", torch.optim.AdamW, dict(lr=1e-3, weight_decay=0.1)),
    ("adamw", torch.optim.AdamW, dict(lr=1e-3, amsgrad=True)),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name,ctor,hyper", CASES)
def test_optimizer_state_bytes_equal_measured(name, ctor, hyper, dtype):
    opt, n, k = _run(lambda p: ctor(p, **hyper), dtype)
    predicted = M.optimizer_state_bytes(name, n, dtype, n_tensors=k, **hyper)
    assert M.state_bytes(opt) == predicted
    if name in ("adam", "adamw"):  # a sanity anchor independent of the formula
        assert predicted >= 2 * n * dtype.itemsize


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("m", [1, 3, 7])
def test_lbfgs_full_history_bytes_equal_measured(m, dtype):
    opt, n, _ = _run(lambda p: torch.optim.LBFGS(p, lr=0.5, history_size=m, max_iter=30),
                     dtype, steps=2)
    st = opt.state[opt._params[0]]
    assert len(st["old_dirs"]) == m  # the history is full
    assert M.state_bytes(opt) == M.optimizer_state_bytes("lbfgs", n, dtype, history_size=m,
                                                         max_iter=30)


def test_lbfgs_strong_wolfe_within_one_scalar():
    opt, n, _ = _run(lambda p: torch.optim.LBFGS(p, history_size=4, max_iter=12,
                                                 line_search_fn="strong_wolfe"),
                     torch.float64, steps=1)
    predicted = M.optimizer_state_bytes("lbfgs", n, "float64", history_size=4,
                                        line_search_fn="strong_wolfe")
    measured = M.state_bytes(opt)
    assert measured in (predicted, predicted - 8)
    assert len(opt.state[opt._params[0]]["old_dirs"]) == 4


def test_newton_state_is_the_dense_hessian():
    n = 1000
    assert M.optimizer_state_bytes("newton", n) == M.hessian_bytes(n) == 4_000_000
    assert M.optimizer_state_bytes("newton", n, damping=1e-3, line_search_fn="backtracking") == 4_000_000
    assert M.optimizer_state_bytes("newton", n, "float64", symmetric=True) == 8 * n * (n + 1) // 2


def test_state_bytes_counts_shared_storage_once():
    p = torch.zeros(10, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    buf = torch.zeros(10)
    opt.state[p] = {"a": buf, "b": buf[:5], "c": [torch.zeros(3, dtype=torch.float64)], "d": 1.5}
    assert M.state_bytes(opt) == 40 + 24


def test_state_bytes_scales_with_step_dtype_and_tensor_count():
    n = 10**6
    base = M.optimizer_state_bytes("adam", n, "bf16", n_tensors=0)
    assert base == 2 * 2 * n
    assert M.optimizer_state_bytes("adam", n, "bf16", n_tensors=3, step_dtype="float64") == base + 24


# --------------------------------------------------------------------------------------
# Inversion cost
# --------------------------------------------------------------------------------------
def test_inversion_flops_constants():
    n = 300
    assert M.inversion_flops(n, "cholesky") == pytest.approx(n ** 3 / 3)
    assert M.inversion_flops(n, "lu") == pytest.approx(2 * n ** 3 / 3)
    assert M.inversion_flops(n, "eig") == pytest.approx(9 * n ** 3)
    assert M.inversion_flops(n, "lu", explicit_inverse=True) == pytest.approx(2 * n ** 3)
    assert M.inversion_flops(n, "cholesky", explicit_inverse=True) == pytest.approx(n ** 3)
    # Cholesky is half of LU for every n; cost grows as n^3
    assert M.inversion_flops(2 * n) == pytest.approx(8 * M.inversion_flops(n))


def test_inversion_seconds_gpt3_on_top500_number_one():
    n = M.MODELS["GPT-3 175B"].n_params
    s = M.inversion_seconds(n, "El Capitan (TOP500 #1)")
    assert s == pytest.approx(n ** 3 / 3 / 1.742e18)
    years = s / (365.25 * 86400)
    assert 3.0e7 < years < 3.5e7  # about 32 million years at full HPL speed
    assert M.inversion_seconds(n, 1.742e18, efficiency=0.5) == pytest.approx(2 * s)


def test_format_bytes():
    assert M.format_bytes(0) == "0 B"
    assert M.format_bytes(999) == "999 B"
    assert M.format_bytes(1500) == "1.5 kB"
    assert M.format_bytes(80 * 10**9) == "80 GB"
    assert M.format_bytes(2**30, binary=True) == "1 GiB"


# --------------------------------------------------------------------------------------
# Parameter counts: arithmetic against modules built independently (on the meta device)
# --------------------------------------------------------------------------------------
class Bottleneck(nn.Module):
    def __init__(self, c_in, width, stride):
        super().__init__()
        c_out = 4 * width
        self.body = nn.Sequential(
            nn.Conv2d(c_in, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.short = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                    nn.BatchNorm2d(c_out))
                      if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x):
        return torch.relu(self.body(x) + self.short(x))


class Basic(nn.Module):
    def __init__(self, c_in, width, stride):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width))
        self.short = (nn.Sequential(nn.Conv2d(c_in, width, 1, stride, bias=False),
                                    nn.BatchNorm2d(width))
                      if stride != 1 or c_in != width else nn.Identity())

    def forward(self, x):
        return torch.relu(self.body(x) + self.short(x))


def build_resnet(block, counts, num_classes=1000):
    exp = 4 if block is Bottleneck else 1
    mods = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.MaxPool2d(3, 2, 1)]
    c = 64
    for stage, (w, k) in enumerate(zip((64, 128, 256, 512), counts)):
        for i in range(k):
            mods.append(block(c, w, 2 if (i == 0 and stage > 0) else 1))
            c = w * exp
    mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
    return nn.Sequential(*mods)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("depth,block,counts,expected", [
    (18, Basic, (2, 2, 2, 2), 11_689_512),
    (34, Basic, (3, 4, 6, 3), 21_797_672),
    (50, Bottleneck, (3, 4, 6, 3), 25_557_032),
    (101, Bottleneck, (3, 4, 23, 3), 44_549_160),
])
def test_resnet_count_equals_a_built_module(depth, block, counts, expected):
    with torch.device("meta"):
        net = build_resnet(block, counts)
        out = net(torch.empty(2, 3, 224, 224))
    assert out.shape == (2, 1000)  # the module is a working network
    assert M.resnet_params(depth) == n_params(net) == expected
    assert M.resnet_params(depth, num_classes=10) == expected - 990 * (2048 + 1 if depth >= 50 else 512 + 1)


def test_resnet50_layer_list_matches_module_tensors():
    with torch.device("meta"):
        net = build_resnet(Bottleneck, (3, 4, 6, 3))
    ours = sorted(L.n_params for L in M.resnet_layers(50))
    convs_fc_bns = []
    for mod in net.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)):
            convs_fc_bns.append(sum(p.numel() for p in mod.parameters(recurse=False)))
    assert ours == sorted(convs_fc_bns)
    assert len(M.resnet_layers(50)) == 107  # 53 convs, 53 batch norms, 1 fc


def build_encoder(vocab, n_pos, n_types, d, heads, ffn, layers, pooler):
    mods = [nn.Embedding(vocab, d), nn.Embedding(n_pos, d)]
    if n_types:
        mods.append(nn.Embedding(n_types, d))
    mods.append(nn.LayerNorm(d))
    layer = nn.TransformerEncoderLayer(d, heads, ffn, batch_first=True)
    mods.append(nn.TransformerEncoder(layer, layers, enable_nested_tensor=False))
    if pooler:
        mods.append(nn.Linear(d, d))
    return nn.ModuleList(mods)


def test_bert_counts_equal_built_modules():
    with torch.device("meta"):
        base = build_encoder(30522, 512, 2, 768, 12, 3072, 12, pooler=True)
        large = build_encoder(30522, 512, 2, 1024, 16, 4096, 24, pooler=True)
    assert M.MODELS["BERT-base"].n_params == n_params(base) == 109_482_240
    assert M.MODELS["BERT-large"].n_params == n_params(large) == 335_141_888


@pytest.mark.parametrize("name,d,L,heads,expected", [
    ("GPT-2 small", 768, 12, 12, 124_439_808),
    ("GPT-2 medium", 1024, 24, 16, 354_823_168),
    ("GPT-2 XL", 1600, 48, 25, 1_557_611_200),
])
def test_gpt2_counts_equal_built_modules(name, d, L, heads, expected):
    with torch.device("meta"):
        # token + position embeddings, L layers, final LayerNorm (head tied: no parameters)
        net = build_encoder(50257, 1024, 0, d, heads, 4 * d, L, pooler=False)
    assert M.MODELS[name].n_params == n_params(net) == expected


def test_gpt3_count_equals_built_module_and_is_near_175B():
    with torch.device("meta"):
        net = build_encoder(50257, 2048, 0, 12288, 96, 4 * 12288, 96, pooler=False)
    n = M.MODELS["GPT-3 175B"].n_params
    assert n == n_params(net) == 174_604_259_328
    assert abs(n - 175.0e9) / 175.0e9 < 0.003  # the paper's 175.0B, to its rounding


class LlamaBlock(nn.Module):
    def __init__(self, d, d_kv, ffn):
        super().__init__()
        self.q, self.o = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)
        self.k, self.v = nn.Linear(d, d_kv, bias=False), nn.Linear(d, d_kv, bias=False)
        self.gate, self.up = nn.Linear(d, ffn, bias=False), nn.Linear(d, ffn, bias=False)
        self.down = nn.Linear(ffn, d, bias=False)
        self.n1, self.n2 = nn.RMSNorm(d), nn.RMSNorm(d)


def test_llama2_7b_count_equals_built_module():
    assert M.llama_ffn_dim(4096) == 11008
    with torch.device("meta"):
        net = nn.ModuleList([nn.Embedding(32000, 4096)]
                            + [LlamaBlock(4096, 4096, 11008) for _ in range(32)]
                            + [nn.RMSNorm(4096), nn.Linear(4096, 32000, bias=False)])
    assert M.MODELS["Llama 2 7B"].n_params == n_params(net) == 6_738_415_616


def test_llama_grouped_query_attention_70b():
    # Llama 2 70B: dim 8192, 80 layers, 64 heads, 8 key/value heads, ffn_dim_multiplier 1.3,
    # multiple_of 4096 (released configuration)
    ffn = M.llama_ffn_dim(8192, multiple_of=4096, ffn_dim_multiplier=1.3)
    assert ffn == 28672
    assert M.llama_params(32000, 8192, 80, ffn, n_heads=64, n_kv_heads=8) == 68_976_648_192


def test_catalogue_entries_are_cited_and_consistent():
    for name, spec in M.MODELS.items():
        assert spec.name == name and spec.n_params > 10**7
        assert any(str(y) in spec.citation for y in range(2015, 2025)), name
    assert set(M.MODELS) >= {"ResNet-50", "BERT-base", "GPT-2 small", "GPT-3 175B", "Llama 2 7B"}
    for hw in M.HARDWARE.values():
        assert hw.memory_bytes > 0 and hw.flops_per_second > 0 and hw.citation
    # a 7B model's fp32 Hessian against the TOP500 #1's memory: ~32,000 times too large
    top = M.HARDWARE["El Capitan (TOP500 #1)"]
    ratio = M.hessian_bytes(M.MODELS["Llama 2 7B"].n_params) / top.memory_bytes
    assert 3.0e4 < ratio < 3.5e4


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("call,arg", [
    (lambda: M.hessian_bytes(-1), "n_params"),
    (lambda: M.hessian_bytes(2.5), "n_params"),
    (lambda: M.hessian_bytes(10, "int8"), "dtype"),
    (lambda: M.hessian_bytes(10, "float32", symmetric="yes"), "symmetric"),
    (lambda: M.optimizer_state_bytes("lion", 10), "name"),
    (lambda: M.optimizer_state_bytes("adam", -5), "n_params"),
    (lambda: M.optimizer_state_bytes("adam", 5, "complex64"), "dtype"),
    (lambda: M.optimizer_state_bytes("adam", 5, amsgard=True), "amsgard"),
    (lambda: M.optimizer_state_bytes("adam", 5, momentum=0.9), "momentum"),
    (lambda: M.optimizer_state_bytes("adam", 5, n_tensors=-1), "n_tensors"),
    (lambda: M.optimizer_state_bytes("adam", 5, step_dtype="int64"), "dtype"),
    (lambda: M.optimizer_state_bytes("momentum", 5, momentum=0), "momentum"),
    (lambda: M.optimizer_state_bytes("sgd", 5, momentum=-0.1), "momentum"),
    (lambda: M.optimizer_state_bytes("sgd", 5, nesterov=True), "nesterov"),
    (lambda: M.optimizer_state_bytes("lbfgs", 5, history_size=0), "history_size"),
    (lambda: M.optimizer_state_bytes("lbfgs", 5, line_search_fn="armijo"), "line_search_fn"),
    (lambda: M.state_bytes([1, 2]), "optimizer"),
    (lambda: M.inversion_flops(-3), "n"),
    (lambda: M.inversion_flops(3, "qr"), "method"),
    (lambda: M.inversion_seconds(3, 0), "flops_per_second"),
    (lambda: M.inversion_seconds(3, float("nan")), "flops_per_second"),
    (lambda: M.inversion_seconds(3, "my laptop"), "flops_per_second"),
    (lambda: M.inversion_seconds(3, 1e9, efficiency=1.5), "efficiency"),
    (lambda: M.format_bytes(-1), "n_bytes"),
    (lambda: M.resnet_layers(depth=42), "depth"),
    (lambda: M.resnet_params(50, num_classes=0), "num_classes"),
    (lambda: M.bert_params(hidden=-768), "hidden"),
    (lambda: M.gpt2_params(layers=-1), "layers"),
    (lambda: M.llama_params(n_heads=0), "n_heads"),
    (lambda: M.llama_params(d_model=4096, n_heads=32, n_kv_heads=5), "n_kv_heads"),
    (lambda: M.llama_ffn_dim(4096, ffn_dim_multiplier=-1.0), "ffn_dim_multiplier"),
])
def test_bad_input_names_the_argument(call, arg):
    with pytest.raises((ValueError, TypeError), match=arg):
        call()
