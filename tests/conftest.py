"""Shared pytest set-up.

The library tests use small problems, for which one torch thread is both faster (no thread
start-up per tiny kernel) and bitwise repeatable; set it once here rather than per file.
"""
import matplotlib

matplotlib.use("Agg")  # tests draw figures without a screen

import torch  # noqa: E402

torch.set_num_threads(1)
