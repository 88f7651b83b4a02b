import os
import sys

# JAX on the CPU, in float64, for every test (CI has no accelerator).
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_ENABLE_X64", "1")
sys.path.insert(0, os.path.dirname(__file__))  # tests/reference.py, tests/latex_check.py

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
