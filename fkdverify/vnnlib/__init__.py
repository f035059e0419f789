"""The single-network question: a VNN-LIB spec (read/write), ``verify`` (attack, bounds,
MILP or branch and bound) and the batch over a VNN-COMP instances.csv."""
