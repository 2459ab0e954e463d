"""Curvature for influence functions: products, exact inverses, iterative solvers, EK-FAC factors, TRAK kernels."""
