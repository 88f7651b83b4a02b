"""Trees and B-series: the coordinate-free engine (Runge-Kutta tree recursion, B-series steps, coloured
trees for several losses and players, scalar invariants for modified losses, tree notation)."""
