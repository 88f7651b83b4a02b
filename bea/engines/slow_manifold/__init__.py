"""The slow manifold of rules with memory: each state as a series in h, for any engine's algebra."""
