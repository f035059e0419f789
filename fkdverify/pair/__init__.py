"""The teacher/student question (DESIGN.md sections 1 and 3): is the student faithful to its
teacher on the ball around each test point? Options, the point state, attack, re-check,
softmax bounds, the stages, certify, the dataset runner and the export of the product."""

from .certify import certify_batch, certify_point
from .context import PairContext
from .options import CertifyOptions
from .stages.agreement import network_robustness

__all__ = ["CertifyOptions", "PairContext", "certify_batch", "certify_point", "network_robustness"]
