r"""What curvature costs: bytes of Hessians and optimizer states, FLOPs and time of inversion.

Everything here is arithmetic on sizes, so it runs for GPT-3 as easily as for a toy MLP:

* :func:`hessian_bytes` -- the dense Hessian, full (:math:`n^2`) or one triangle
  (:math:`n(n+1)/2`);
* :func:`optimizer_state_bytes` -- what each torch.optim optimizer keeps between steps,
  checked in the tests against :func:`state_bytes`, which measures a real optimizer;
* :func:`inversion_flops` / :func:`inversion_seconds` -- the cost of a dense factorisation;
* :data:`MODELS` -- real networks with exact parameter counts, each computed from its
  architecture (ResNet from a layer list, transformers from their published configurations);
* :data:`HARDWARE` -- memory and FLOP/s of reference machines, with sources.

Byte counts are exact integers; units are decimal (1 GB = :math:`10^9` B), as the hardware
vendors state them. :func:`format_bytes` prints them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from . import methods
from ._checks import check_choice, check_flag, check_int, check_nonnegative, check_positive

__all__ = ["DTYPE_BYTES", "dtype_bytes", "hessian_bytes", "optimizer_state_bytes", "state_bytes",
           "inversion_flops", "inversion_seconds", "format_bytes",
           "Layer", "resnet_layers", "resnet_params", "bert_params", "gpt2_params",
           "llama_ffn_dim", "llama_params", "ModelSpec", "MODELS", "Hardware", "HARDWARE"]

# --------------------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------------------
DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}
_DTYPE_ALIASES = {"fp16": "float16", "half": "float16", "bf16": "bfloat16", "fp32": "float32",
                  "float": "float32", "single": "float32", "fp64": "float64", "double": "float64"}


def dtype_bytes(dtype):
    """Bytes per element of a floating dtype: a name (``"float32"``, ``"fp16"``, ``"bf16"``, ...),
    a ``torch.dtype`` or a numpy dtype."""
    name = dtype if isinstance(dtype, str) else str(dtype)
    name = name.lower().removeprefix("torch.")
    name = _DTYPE_ALIASES.get(name, name)
    if name not in DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {sorted(DTYPE_BYTES) + sorted(_DTYPE_ALIASES)}, "
                         f"got {dtype!r}")
    return DTYPE_BYTES[name]


def _n(name, value):
    return check_int(name, value, minimum=0)


# --------------------------------------------------------------------------------------
# Hessian and optimizer state
# --------------------------------------------------------------------------------------
def hessian_bytes(n_params, dtype="float32", symmetric=False):
    r"""Bytes of a dense :math:`n\times n` Hessian.

    .. math:: \text{full: } n^2 b, \qquad \text{symmetric (one triangle): } \tfrac{n(n+1)}{2} b

    with :math:`b` bytes per element. Example: ResNet-50's 25,557,032 parameters give
    :math:`2.61\times10^{15}` B (2.6 PB) in float32.
    """
    n = _n("n_params", n_params)
    b = dtype_bytes(dtype)
    symmetric = check_flag("symmetric", symmetric)
    return (n * (n + 1) // 2 if symmetric else n * n) * b


#: the methods of curvlib.methods.METHODS whose state this module counts from n_params
_COUNTED = ("sgd", "gd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "lbfgs",
            "newton")


def optimizer_state_bytes(name, n_params, dtype="float32", *, n_tensors=1, step_dtype="float32",
                          **hyper):
    r"""Bytes an optimizer holds between steps for ``n_params`` parameters, as torch.optim does.

    With :math:`n` parameters of :math:`b` bytes in :math:`k` tensors (``n_tensors``):

    ============  ==========================================================================
    ``sgd``       0, or :math:`nb` with ``momentum > 0`` (``momentum_buffer``); ``gd``: 0
    ``momentum``  :math:`nb` (heavy ball; also ``nesterov``)
    ``adagrad``   :math:`nb` (``sum``) + :math:`k` step counters
    ``rmsprop``   :math:`nb` (``square_avg``) + :math:`nb` if ``momentum > 0`` + :math:`nb` if
                  ``centered`` (``grad_avg``) + :math:`k` step counters
    ``adam``      :math:`2nb` (``exp_avg``, ``exp_avg_sq``) + :math:`nb` with ``amsgrad``
                  + :math:`k` step counters (also ``adamw``)
    ``lbfgs``     :math:`(2m+2)nb + (2m+1)b` for a full history of :math:`m` pairs
                  (``history_size``): ``old_dirs`` and ``old_stps`` (:math:`m` vectors each),
                  ``d``, ``prev_flat_grad`` and the 0-d tensors ``ro`` (:math:`m`), ``al``
                  (:math:`m`) and ``H_diag``
    ``newton``    the dense Hessian, :func:`hessian_bytes` (``symmetric`` for one triangle):
                  the working memory of every step (curvlib's ``Newton`` forms it anew each
                  step and keeps no tensor state between steps; torch has no Newton)
    ============  ==========================================================================

    Step counters are 0-d tensors of ``step_dtype`` (torch uses float32, or float64 when the
    default dtype is float64), one per parameter tensor. Python numbers in the state
    (L-BFGS's ``n_iter``, ``func_evals``, ``prev_loss``) are not counted. L-BFGS's step length
    ``t`` is a 0-d tensor when the strong-Wolfe search interpolated and a Python float
    otherwise; it is counted (one more scalar) for ``line_search_fn="strong_wolfe"``, so that
    figure may be one scalar high.

    ``hyper`` takes the optimizer's constructor arguments, with the defaults and checks of
    :data:`curvlib.methods.METHODS`; those that change no state size (``lr``, ``betas``,
    ``weight_decay``, ...) are accepted and ignored, unknown ones rejected (``ValueError``).
    """
    check_choice("name", name, _COUNTED)
    n = _n("n_params", n_params)
    b = dtype_bytes(dtype)
    k = check_int("n_tensors", n_tensors, minimum=0)
    step_b = dtype_bytes(step_dtype)
    symmetric = hyper.pop("symmetric", False) if name == "newton" else False
    h = methods.resolve(name, hyper, options=methods.METHODS[name].options)

    if name in ("sgd", "gd", "momentum", "nesterov"):
        return n * b if h["momentum"] > 0 else 0
    if name == "adagrad":
        return n * b + k * step_b
    if name == "rmsprop":
        vectors = 1 + (h["momentum"] > 0) + h["centered"]
        return vectors * n * b + k * step_b
    if name in ("adam", "adamw"):
        return (2 + h["amsgrad"]) * n * b + k * step_b
    if name == "lbfgs":
        m = h["history_size"]
        scalars = 2 * m + 1 + (h["line_search_fn"] == "strong_wolfe")
        return ((2 * m + 2) * n + scalars) * b
    return hessian_bytes(n, dtype, symmetric=symmetric)  # newton


def state_bytes(optimizer):
    """Bytes of the tensors a live torch optimizer holds in ``optimizer.state``, measured.

    Walks the state (dicts, lists, tuples) and sums the storage of every tensor, counting
    a storage shared by several tensors once. Python numbers are not counted.
    """
    if not hasattr(optimizer, "state"):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    seen = {}

    def walk(obj):
        if hasattr(obj, "untyped_storage"):
            s = obj.untyped_storage()
            seen[(s.data_ptr(), s.nbytes())] = s.nbytes()
        elif isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v)

    walk(list(optimizer.state.values()))
    return sum(seen.values())


# --------------------------------------------------------------------------------------
# Cost of a dense inversion
# --------------------------------------------------------------------------------------
_FLOP_CONSTANTS = {  # leading coefficient c of c*n^3: (factorisation, explicit inverse)
    "cholesky": (1 / 3, 1.0),
    "lu": (2 / 3, 2.0),
    "eig": (9.0, 10.0),
}


def inversion_flops(n, method="cholesky", *, explicit_inverse=False):
    r"""Floating-point operations (leading term) to factorise or invert a dense :math:`n\times n`.

    ==============  ==============================  ================
    ``method``      factorisation (solve a system)  explicit inverse
    ==============  ==============================  ================
    ``"cholesky"``  :math:`n^3/3`                   :math:`n^3`
    ``"lu"``        :math:`2n^3/3`                  :math:`2n^3`
    ``"eig"``       :math:`9n^3`                    :math:`10n^3`
    ==============  ==============================  ================

    Cholesky (symmetric positive definite) and LU with partial pivoting: Golub & Van Loan,
    *Matrix Computations*, 4th ed., Johns Hopkins University Press, 2013, §4.2 and §3.2;
    inverses from the factors: Higham, *Accuracy and Stability of Numerical Algorithms*,
    2nd ed., SIAM, 2002, ch. 14. ``"eig"`` is the symmetric QR algorithm with eigenvectors
    accumulated (about :math:`9n^3`, Golub & Van Loan §8.3; :math:`4n^3/3` for eigenvalues
    alone), plus :math:`n^3` to form :math:`V\Lambda^{-1}V^\top`. Solving with the factors
    adds only :math:`O(n^2)`.
    """
    n = _n("n", n)
    check_choice("method", method, _FLOP_CONSTANTS)
    factor, inverse = _FLOP_CONSTANTS[method]
    return (inverse if check_flag("explicit_inverse", explicit_inverse) else factor) * float(n) ** 3


def inversion_seconds(n, flops_per_second, method="cholesky", *, explicit_inverse=False,
                      efficiency=1.0):
    r"""Seconds for :func:`inversion_flops` at ``efficiency`` times ``flops_per_second``.

    ``flops_per_second`` is a number or a key of :data:`HARDWARE` (its FP64 rate). The
    default ``efficiency=1`` is a lower bound on the time: real factorisations reach a
    fraction of peak (the TOP500's Rmax is itself a dense LU, HPL, at scale).
    """
    if isinstance(flops_per_second, str):
        check_choice("flops_per_second", flops_per_second, HARDWARE)
        flops_per_second = HARDWARE[flops_per_second].flops_per_second
    rate = check_positive("flops_per_second", flops_per_second)
    efficiency = check_positive("efficiency", efficiency)
    if efficiency > 1:
        raise ValueError(f"efficiency must be in (0, 1], got {efficiency}")
    return inversion_flops(n, method, explicit_inverse=explicit_inverse) / (rate * efficiency)


def format_bytes(n_bytes, binary=False):
    """``2612647538596096 -> '2.61 PB'`` (decimal units; ``binary=True`` for KiB, MiB, ...)."""
    n_bytes = check_nonnegative("n_bytes", n_bytes)
    binary = check_flag("binary", binary)
    base = 1024 if binary else 1000
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB", "RB", "QB"]
    if binary:
        units = ["B"] + [u[0].upper() + "iB" for u in units[1:]]
    i = 0
    while n_bytes >= base and i < len(units) - 1:
        n_bytes /= base
        i += 1
    return f"{n_bytes:.0f} B" if i == 0 else f"{n_bytes:.3g} {units[i]}"


# --------------------------------------------------------------------------------------
# Parameter counts from architecture definitions
# --------------------------------------------------------------------------------------
class Layer(NamedTuple):
    """One parameterised layer: ``kind`` is ``"conv"`` (no bias), ``"bn"`` or ``"fc"``."""
    kind: str
    name: str
    shape: tuple  # conv: (c_in, c_out, k); bn: (channels,); fc: (d_in, d_out)

    @property
    def n_params(self):
        if self.kind == "conv":
            c_in, c_out, k = self.shape
            return c_in * c_out * k * k
        if self.kind == "bn":
            return 2 * self.shape[0]  # weight and bias; running statistics are buffers
        d_in, d_out = self.shape
        return d_in * d_out + d_out


_RESNET_DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
                  50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3)),
                  152: ("bottleneck", (3, 8, 36, 3))}


def resnet_layers(depth=50, num_classes=1000):
    """The parameterised layers of an ImageNet ResNet, in order.

    He, Zhang, Ren & Sun (2016), "Deep Residual Learning for Image Recognition", CVPR,
    Table 1, in torchvision's layout: a 7x7 stem, four stages of widths 64-512 (bottleneck
    blocks expand 4x), 1x1 projection shortcuts where the shape changes, bias-free
    convolutions each followed by batch norm, and a final fully connected layer.
    """
    check_choice("depth", depth, _RESNET_DEPTHS)
    num_classes = check_int("num_classes", num_classes, minimum=1)
    block, counts = _RESNET_DEPTHS[depth]
    expansion = 4 if block == "bottleneck" else 1
    layers = [Layer("conv", "conv1", (3, 64, 7)), Layer("bn", "bn1", (64,))]
    c_in = 64
    for stage, (width, count) in enumerate(zip((64, 128, 256, 512), counts), start=1):
        for i in range(count):
            p = f"layer{stage}.{i}"
            if block == "bottleneck":
                convs = [(c_in, width, 1), (width, width, 3), (width, width * 4, 1)]
            else:
                convs = [(c_in, width, 3), (width, width, 3)]
            for j, shape in enumerate(convs, start=1):
                layers += [Layer("conv", f"{p}.conv{j}", shape), Layer("bn", f"{p}.bn{j}", (shape[1],))]
            c_out = width * expansion
            if i == 0 and (stage > 1 or c_in != c_out):  # stride 2 or a width change
                layers += [Layer("conv", f"{p}.downsample.0", (c_in, c_out, 1)),
                           Layer("bn", f"{p}.downsample.1", (c_out,))]
            c_in = c_out
    layers.append(Layer("fc", "fc", (c_in, num_classes)))
    return layers


def resnet_params(depth=50, num_classes=1000):
    """Parameter count of :func:`resnet_layers` (ResNet-50: 25,557,032)."""
    return sum(layer.n_params for layer in resnet_layers(depth, num_classes))


def _transformer_layer(d, ffn, *, bias=True, norm_params=2):
    """Self-attention (Q, K, V, output) + two-layer MLP + two norms of one layer."""
    attn = 4 * d * d + (4 * d if bias else 0)
    mlp = 2 * d * ffn + ((ffn + d) if bias else 0)
    return attn + mlp + 2 * norm_params * d


def bert_params(vocab_size=30522, hidden=768, layers=12, ffn=3072, max_position=512,
                type_vocab=2, pooler=True):
    r"""Parameters of a BERT encoder (Devlin et al., 2019, NAACL).

    .. math::
        (V + P + T)\,d + 2d \;+\; L\,(12d^2 + 13d)\big|_{f=4d} \;+\; (d^2 + d)_{\text{pooler}}

    with the general layer :math:`4d^2 + 4d + 2df + f + d + 4d`. Word, position and
    token-type embeddings with a LayerNorm; no pre-training heads.
    """
    for arg, v in dict(vocab_size=vocab_size, hidden=hidden, layers=layers, ffn=ffn,
                       max_position=max_position, type_vocab=type_vocab).items():
        _n(arg, v)
    pooler = check_flag("pooler", pooler)
    d = hidden
    emb = (vocab_size + max_position + type_vocab) * d + 2 * d
    return emb + layers * _transformer_layer(d, ffn) + ((d * d + d) if pooler else 0)


def gpt2_params(vocab_size=50257, n_ctx=1024, d_model=768, layers=12, ffn=None):
    r"""Parameters of a GPT-2-style decoder (Radford et al., 2019; GPT-3 uses the same layout).

    .. math:: (V + n_{ctx})\,d + L\,(12d^2 + 13d) + 2d \qquad (f = 4d)

    Learned token and position embeddings, pre-norm layers with biases, a final LayerNorm;
    the output projection is tied to the token embedding and adds nothing.
    """
    for arg, v in dict(vocab_size=vocab_size, n_ctx=n_ctx, d_model=d_model, layers=layers).items():
        _n(arg, v)
    ffn = 4 * d_model if ffn is None else _n("ffn", ffn)
    d = d_model
    return (vocab_size + n_ctx) * d + layers * _transformer_layer(d, ffn) + 2 * d


def llama_ffn_dim(d_model, multiple_of=256, ffn_dim_multiplier=None):
    r"""Hidden width of LLaMA's SwiGLU MLP, as Meta's reference code computes it.

    :math:`\lfloor 2\cdot 4d/3 \rfloor` (times ``ffn_dim_multiplier``), rounded up to a multiple
    of ``multiple_of``: 11008 for :math:`d = 4096`.
    """
    d_model = check_int("d_model", d_model, minimum=1)
    multiple_of = check_int("multiple_of", multiple_of, minimum=1)
    hidden = int(2 * 4 * d_model / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(check_positive("ffn_dim_multiplier", ffn_dim_multiplier) * hidden)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


def llama_params(vocab_size=32000, d_model=4096, layers=32, ffn=None, n_heads=32, n_kv_heads=None,
                 tied_embeddings=False):
    r"""Parameters of a LLaMA-style decoder (Touvron et al., 2023).

    .. math::
        V d\,(2 \text{ if untied}) + L\,\bigl(2d^2 + 2d\,d_{kv} + 3 d f + 2d\bigr) + d,
        \qquad d_{kv} = d\, h_{kv}/h

    Bias-free projections, a SwiGLU MLP (three matrices), RMSNorm weights only, rotary
    position embeddings (no parameters), grouped-query attention when ``n_kv_heads < n_heads``.
    """
    for arg, v in dict(vocab_size=vocab_size, d_model=d_model, layers=layers).items():
        _n(arg, v)
    n_heads = check_int("n_heads", n_heads, minimum=1)
    n_kv_heads = n_heads if n_kv_heads is None else check_int("n_kv_heads", n_kv_heads, minimum=1)
    if d_model % n_heads or n_heads % n_kv_heads:
        raise ValueError(f"n_heads ({n_heads}) must divide d_model ({d_model}) and be a multiple "
                         f"of n_kv_heads ({n_kv_heads})")
    ffn = llama_ffn_dim(d_model) if ffn is None else _n("ffn", ffn)
    d, d_kv = d_model, d_model // n_heads * n_kv_heads
    layer = 2 * d * d + 2 * d * d_kv + 3 * d * ffn + 2 * d
    tied = check_flag("tied_embeddings", tied_embeddings)
    return vocab_size * d * (1 if tied else 2) + layers * layer + d


# --------------------------------------------------------------------------------------
# Catalogue of real models
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """A real model: exact parameter count, how it was counted, and where it comes from."""
    name: str
    n_params: int
    counted_from: str
    citation: str
    reported: str = ""  # the size the paper states, when it differs in rounding or scope
    config: dict = field(default_factory=dict)


_HE2016 = ("He, Zhang, Ren & Sun, \"Deep Residual Learning for Image Recognition\", CVPR 2016")
_DEVLIN2019 = ("Devlin, Chang, Lee & Toutanova, \"BERT: Pre-training of Deep Bidirectional "
               "Transformers for Language Understanding\", NAACL-HLT 2019")
_RADFORD2019 = ("Radford, Wu, Child, Luan, Amodei & Sutskever, \"Language Models are Unsupervised "
                "Multitask Learners\", OpenAI technical report 2019")
_BROWN2020 = ("Brown et al., \"Language Models are Few-Shot Learners\", NeurIPS 2020")
_TOUVRON2023 = ("Touvron et al., \"Llama 2: Open Foundation and Fine-Tuned Chat Models\", "
                "arXiv:2307.09288, 2023")


def _catalogue():
    models = [ModelSpec("ResNet-50", resnet_params(50), "layer list (resnet_layers), torchvision "
                        "layout, 1000 classes", _HE2016, "25.6M (commonly quoted)",
                        dict(depth=50, num_classes=1000))]
    bert = {"BERT-base": dict(hidden=768, layers=12, ffn=3072),
            "BERT-large": dict(hidden=1024, layers=24, ffn=4096)}
    for name, cfg in bert.items():
        reported = "110M" if name == "BERT-base" else "340M"
        models.append(ModelSpec(name, bert_params(**cfg), "bert_params: encoder with pooler, "
                                "vocabulary 30,522, 512 positions, 2 token types", _DEVLIN2019,
                                reported, cfg))
    gpt2 = {"GPT-2 small": (768, 12, "117M"), "GPT-2 medium": (1024, 24, "345M"),
            "GPT-2 large": (1280, 36, "762M"), "GPT-2 XL": (1600, 48, "1542M")}
    for name, (d, L, reported) in gpt2.items():
        cfg = dict(vocab_size=50257, n_ctx=1024, d_model=d, layers=L)
        models.append(ModelSpec(name, gpt2_params(**cfg), "gpt2_params: tied embeddings, "
                                "vocabulary 50,257, context 1024", _RADFORD2019,
                                reported + " in the paper's Table 2", cfg))
    cfg = dict(vocab_size=50257, n_ctx=2048, d_model=12288, layers=96)
    models.append(ModelSpec("GPT-3 175B", gpt2_params(**cfg), "gpt2_params with Table 2.1's "
                            "configuration (96 layers, d_model 12288, 96 heads, context 2048, "
                            "d_ff = 4 d_model) and GPT-2's vocabulary; the paper gives no "
                            "exact count", _BROWN2020, "175.0B in Table 2.1", cfg))
    cfg = dict(vocab_size=32000, d_model=4096, layers=32, n_heads=32)
    models.append(ModelSpec("Llama 2 7B", llama_params(**cfg), "llama_params with the released "
                            "configuration (dim 4096, 32 layers, 32 heads, vocabulary 32,000, "
                            "SwiGLU width 11008 from llama_ffn_dim, untied output layer)",
                            _TOUVRON2023, "7B", cfg))
    return {m.name: m for m in models}


#: name -> :class:`ModelSpec`.
MODELS = _catalogue()


@dataclass(frozen=True)
class Hardware:
    """A reference machine: memory in bytes and the FP64 rate used for inversion times."""
    name: str
    memory_bytes: int
    flops_per_second: float
    citation: str
    note: str = ""


#: name -> :class:`Hardware`. Decimal units as the vendors state them.
HARDWARE = {h.name: h for h in [
    Hardware("NVIDIA A100 80GB", 80 * 10**9, 19.5e12,
             "NVIDIA A100 Tensor Core GPU datasheet (2021)",
             "FP64 Tensor Core peak; 9.7 TFLOP/s FP64 without Tensor Cores; 80 GB HBM2e"),
    Hardware("NVIDIA H100 SXM 80GB", 80 * 10**9, 67e12,
             "NVIDIA H100 Tensor Core GPU datasheet (2022)",
             "FP64 Tensor Core peak; 34 TFLOP/s FP64 without Tensor Cores; 80 GB HBM3"),
    Hardware("El Capitan (TOP500 #1)", 43_808 * 128 * 10**9, 1.742e18,
             "TOP500, 65th list (June 2025), top500.org news 'El Capitan Retains Top Spot in "
             "65th TOP500 List': HPL Rmax 1.742 EFlop/s",
             "flops = measured HPL Rmax (a dense LU), not peak. Memory is derived, not listed: "
             "43,808 AMD MI300A APUs (the TOP500 core count 11,039,616 = 43,808 x (24 CPU "
             "cores + 228 GPU compute units)) x 128 GB HBM3 each (LLNL El Capitan systems "
             "overview, hpc.llnl.gov). The 66th list (November 2025) reports a remeasured "
             "1.809 EFlop/s according to insideHPC; we could not check that on top500.org."),
]}


def __getattr__(name):
    # K-FAC's and Shampoo's byte counts live beside the optimizers (curvlib.second_order), which
    # must not import this module at load time; they are re-exported here on first use.
    if name in ("kfac_bytes", "shampoo_bytes"):
        from . import second_order
        return getattr(second_order, name)
    raise AttributeError(f"module 'curvlib.memory' has no attribute {name!r}")
