"""The product network: teacher and student side by side on one shared input, followed by a
linear head over their concatenated logits (DESIGN.md section 3)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import MismatchError
from .graph import Concat, Linear, Network, Node


def check_pair(teacher: Network, student: Network) -> None:
    """Raise MismatchError unless both take the same input and give the same number of classes."""
    if teacher.input_size != student.input_size:
        raise MismatchError(
            f"teacher takes input {teacher.input_shape} but student takes {student.input_shape}; "
            "both networks must read the same input"
        )
    if teacher.n_classes != student.n_classes:
        raise MismatchError(
            f"teacher has {teacher.n_classes} outputs but student has {student.n_classes}; "
            "both networks must score the same classes"
        )


def product(
    teacher: Network, student: Network, head: np.ndarray | None = None, head_bias=None
) -> tuple[Network, int, int]:
    """Join the two networks on a shared input (the teacher's input shape).

    Returns (product, t_out, s_out): value ids of the teacher's and student's logits inside the
    product. Its output is ``head @ [z_T; z_S] + head_bias`` (head: (R, 2K)), or the
    concatenated logits (2K,) when ``head`` is None."""
    check_pair(teacher, student)
    nodes = list(teacher.nodes)
    off = len(nodes)
    for n in student.nodes:
        nodes.append(replace(n, inputs=tuple(0 if v == 0 else v + off for v in n.inputs)))
    t_out, s_out = teacher.output, student.output + off if student.output else 0
    k = teacher.n_classes
    nodes.append(Node(Concat(), (t_out, s_out), (2 * k,), "product/concat"))
    if head is not None:
        head = np.asarray(head, dtype=np.float64)
        b = np.zeros(len(head)) if head_bias is None else np.asarray(head_bias, np.float64)
        nodes.append(Node(Linear(head, b), (len(nodes),), (len(head),), "product/head"))
    meta = {"teacher": teacher.meta, "student": student.meta}
    return Network(teacher.input_shape, tuple(nodes), len(nodes), meta), t_out, s_out
