"""Solver-neutral MILP model, network encoder, property formulations and back-ends."""
