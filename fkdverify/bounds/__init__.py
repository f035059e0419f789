"""Sound bound propagation (IBP, CROWN) over canonical networks, in torch float64."""

from .propagate import Bounds, network_bounds, spec_bounds

__all__ = ["Bounds", "network_bounds", "spec_bounds"]
