"""Sweeps: search spaces, trials, Pareto fronts."""
