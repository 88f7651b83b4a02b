"""Fixtures shared by the sweeps' tests."""

import jax
import jax.numpy as jnp
import pytest


@pytest.fixture
def without_f1(monkeypatch):
    """Numeric fields built inside the test lose f_1 (set to 0): a wrong field, which the sweeps must fail."""
    import bea.engines.taylor as taylor

    exact = taylor.modified_terms

    def dropped(*args, **kwargs):
        terms = exact(*args, **kwargs)
        return [terms[0], jax.tree_util.tree_map(jnp.zeros_like, terms[1])] + terms[2:]

    monkeypatch.setattr(taylor, "modified_terms", dropped)
