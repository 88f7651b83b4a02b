"""Coordinate-free SME terms evaluated on parameter pytrees by automatic differentiation.

A term of a coordinate-free stochastic modified equation is a coefficient times a tensor network
(`bea.engines.stochastic._tensor_networks`): derivative tensors nabla^k E of the loss, identities,
and the test function's slots. Its value at theta is computed without forming any tensor:

- identities become edges (an identity on one node is a trace);
- a spanning tree rooted at the test function is kept, and every other edge (a trace, a double
  contraction such as nabla^3 E : nabla^2 E) is cut: both ends receive a basis vector e_j, summed
  over j (one `jax.vmap` over the basis per cut, so a network with c cuts costs P^c evaluations);
- a node nabla^k E with its children's vectors w_1..w_{k-1} (held fixed) and a free slot towards
  its parent is grad_theta D^{k-1}E(theta)[w_1, ..., w_{k-1}]: nested jvps, one gradient.

Only networks of E and identities are lowered here; cumulant tensors (Sigma, kappa_3) need the
per-example gradients: `bea.sgd_sde` lowers SGD's order-1 equation with a low-rank noise.
"""

from __future__ import annotations

from .._errors import UnsupportedError

__all__ = ["lower_coordinate_free", "network_vector"]


def _edges_without_identities(network):
    """The network's nodes other than identities, and its edges with each identity replaced by one edge."""
    keep = [i for i, node in enumerate(network.nodes) if node[0] != "I"]
    index = {old: new for new, old in enumerate(keep)}
    ends: dict[int, list] = {}
    edges = []
    for (u, _), (v, _) in network.edges:
        for a, b in ((u, v), (v, u)):
            if network.nodes[a][0] == "I":
                ends.setdefault(a, []).append(b)
                break
        else:
            edges.append((index[u], index[v]))
    edges += [(index[a], index[b]) for a, b in ends.values()]
    return [network.nodes[i] for i in keep], edges


def network_vector(network, loss, inputs: int, output: int = -1):
    """f(theta, *vectors) -> the network's value with its first `inputs` test-function slots fed the
    given vectors and one slot (`output`, by position among the test function's edges) left free: the
    drift term for inputs = 0, a matrix-vector product for inputs = 1 (the transpose's with the other
    output). `loss(theta)` is a scalar JAX function of a flat parameter vector."""
    import jax
    import jax.numpy as jnp

    nodes, edges = _edges_without_identities(network)
    if inputs == 1 and len(nodes) == 1 and edges == [(0, 0)]:  # the identity operator
        return lambda theta, v: v
    for node in nodes:
        if node[0] not in ("phi", "E"):
            raise UnsupportedError(
                "this term holds the per-example gradients' cumulants (Sigma, kappa_3, ...), which need the data: "
                "for SGD use bea.sgd_sde(loss, data, batch_size=B) (order <= 1), or sme.on(losses=..., params=...)"
                ".to_jax() on concrete losses"
            )
    phi_edges = [k for k, (a, b) in enumerate(edges) if 0 in (a, b)]
    if len(phi_edges) != inputs + 1:
        raise UnsupportedError(f"a term with {len(phi_edges)} test-function slots is not a drift or diffusion term")
    output_edge = phi_edges[output]
    input_edges = [k for k in phi_edges if k != output_edge]
    # each input slot of the test function becomes a leaf of its own; the output slot is the root's parent
    for i, k in enumerate(input_edges):
        a, b = edges[k]
        nodes.append(("input", i))
        edges[k] = (len(nodes) - 1, b if a == 0 else a)
    a, b = edges[output_edge]
    root = b if a == 0 else a
    # spanning tree from the root, breadth first; every other edge (traces, double contractions) is cut
    seen, tree, queue = {root}, {output_edge}, [root]
    while queue:
        u = queue.pop(0)
        for k, (a, b) in enumerate(edges):
            w = b if a == u else a
            if u in (a, b) and k not in tree and a != b and w not in seen:
                seen.add(w)
                tree.add(k)
                queue.append(w)
    cuts = [k for k in range(len(edges)) if k not in tree]

    def value(theta, vectors, basis):
        """The contraction with the free slot on `output_edge`; basis[c] feeds both ends of cut c."""
        def subtree(u, towards):
            if nodes[u][0] == "input":
                return vectors[nodes[u][1]]
            children = []
            for k, (a, b) in enumerate(edges):
                if k == towards or u not in (a, b):
                    continue
                if k in cuts:
                    children += [basis[cuts.index(k)]] * (2 if a == b else 1)  # a self-loop feeds two slots
                else:
                    children.append(subtree(b if a == u else a, k))
            assert len(children) == nodes[u][1] - 1, (nodes[u], len(children))

            def form(x):
                f = loss
                for w in children:
                    f = (lambda g, w: lambda y: jax.jvp(g, (y,), (w,))[1])(f, w)
                return f(x)

            return jax.grad(form)(theta)

        return subtree(root, output_edge)

    def evaluate(theta, *vectors):
        fn = lambda basis: value(theta, vectors, basis)  # noqa: E731
        eye = jnp.eye(theta.shape[0], dtype=theta.dtype)
        for position in reversed(range(len(cuts))):
            fn = (lambda g, position: lambda basis: jnp.sum(
                jax.vmap(lambda e: g(basis[:position] + (e,) + basis[position + 1:]))(eye), axis=0))(fn, position)
        return fn(tuple(jnp.zeros_like(theta) for _ in cuts))

    return evaluate


def lower_coordinate_free(sme, loss, order: int, *, allow_float32: bool = False):
    """(drift, noise) of a coordinate-free SME truncated after h^order, on parameter pytrees:

        drift(params, h, **values) = b_0 + h b_1 + ... + h^order b_order,
        noise(params, h, xi, **values) = D~^{1/2} xi,  D~ = c I + X, X = h D_1 + ... (c = D_0 > 0),

    the square root as its binomial series sqrt(c) sum_k binom(1/2, k) (X/c)^k xi, truncated after
    k = order (D~^{1/2} is then exact through h^order, as the SME is). `values` are the symbols left
    in the coefficients (the temperature T), traced. Needs D_0 a positive multiple of the identity
    (Langevin); SGD's D_0 = 0 has no such series (`bea.sgd_sde` gives its low-rank noise).
    """
    import jax
    import jax.numpy as jnp
    import sympy as sp
    from jax.flatten_util import ravel_pytree

    from ._x64 import require_x64

    if not allow_float32:
        require_x64("the coordinate-free stochastic modified equation")
    symbols = sorted({s for op in sme.generator[: order + 1] for c in op.values() for s in c.free_symbols}, key=str)
    names = [s.name for s in symbols]

    d0 = sme.diffusion[0]
    identity = [(n, c) for n, c in d0.items() if len(n.nodes) == 2 and n.nodes[1] == ("I",)]
    if len(d0) != 1 or not identity:
        raise UnsupportedError(
            f"the noise of {getattr(sme.rule, 'name', sme.rule)} is lowered here only when D_0 is a multiple of the "
            "identity (Langevin); for SGD (D_0 = 0, the noise O(h)) use bea.sgd_sde(loss, data, batch_size=B)"
        )
    c0 = identity[0][1]

    def build(params):
        flat, unravel = ravel_pytree(params)

        def flat_loss(theta):
            return loss(unravel(theta))

        drift_terms = [[(sp.lambdify(symbols, c, modules="jax"), network_vector(n, flat_loss, 0))
                        for n, c in sme.drift[l].items()] for l in range(order + 1)]
        diffusion_terms = [[(sp.lambdify(symbols, c, modules="jax"), _symmetric_matvec(n, flat_loss))
                            for n, c in sme.diffusion[l].items()] for l in range(1, order + 1)]
        return flat, unravel, drift_terms, diffusion_terms

    scale = sp.lambdify(symbols, c0, modules="jax")

    def check(values):
        missing = sorted(set(names) - set(values))
        unknown = sorted(set(values) - set(names))
        if missing or unknown:
            raise UnsupportedError(f"give values for {', '.join(names) or 'no symbols'} (keywords), got "
                                   f"{', '.join(sorted(values)) or 'none'}")
        return [values[n] for n in names]

    def drift(params, h, **values):
        args = check(values)
        theta, unravel, drift_terms, _ = build(params)
        total = jnp.zeros_like(theta)
        for l, terms in enumerate(drift_terms):
            for coefficient, vector in terms:
                total = total + h**l * coefficient(*args) * vector(theta)
        return unravel(total)

    def noise(params, h, xi, **values):
        args = check(values)
        theta, unravel, _, diffusion_terms = build(params)
        c = scale(*args)

        def x_over_c(v):  # (h D_1 + ... + h^order D_order) v / c, each D_l symmetrized
            out = jnp.zeros_like(v)
            for l, terms in enumerate(diffusion_terms, start=1):
                for coefficient, matvec in terms:
                    out = out + h**l * coefficient(*args) * matvec(theta, v)
            return out / c

        v = ravel_pytree(xi)[0]
        total, power = v, v
        for k in range(1, order + 1):
            power = x_over_c(power)
            total = total + float(sp.binomial(sp.Rational(1, 2), k)) * power
        return unravel(jnp.sqrt(c) * total)

    return jax.jit(drift), jax.jit(noise)


def _symmetric_matvec(network, loss):
    """v -> sym(N) v = (N v + N^T v)/2: a diffusion term stands for the symmetric part of its network."""
    forward, backward = network_vector(network, loss, 1, 0), network_vector(network, loss, 1, 1)
    return lambda theta, v: (forward(theta, v) + backward(theta, v)) / 2
