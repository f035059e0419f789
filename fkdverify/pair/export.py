"""``fkdverify export``: the teacher/student question around one test point as one ONNX graph
(the product network) plus a VNN-LIB file stating the *violation* of the property, for any
VNN-COMP verifier (alpha,beta-CROWN, nnenum, Marabou, ...) or ``fkdverify verify``.

Outputs of the exported graph, K classes: ``Y_0..Y_{K-1}`` teacher logits, ``Y_K..Y_{2K-1}``
student logits; for ``gap`` and ``faithful`` also ``Y_{2K}..`` teacher and ``Y_{3K}..`` student
softmax probabilities (ONNX Softmax). The input box is the ε-ball around the point clipped to
the input domain, in pixel space (any normalisation is inside the graph).

Violation (unsafe region, VNN-LIB ``sat`` = counterexample):
* agreement: for some a != b, teacher's top class is a and student's is b (ties included);
* gap: g = p_T^c - p_S^c (or its opposite, or both signs for ``abs``) >= δ;
* faithful: either of the two.

The robust-agreement form (``form="robust"``) writes each network alone with the standard
VNN-COMP robustness spec at class c (unsafe: some Y_j >= Y_c): every tool reads it, and both
``unsat`` proves agreement (both keep c on the ball); it cannot prove agreement where a
network changes class, which the product form can.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from .. import defaults as D
from ..errors import InputError
from ..net.onnx_export import to_onnx
from ..net.product import product
from ..net.vnnlib import Spec, write_vnnlib
from ..words import EXPORT_FORMS, GAP_SIGNS, PROPERTIES, GapSign, Property, check_choice


def agreement_disjuncts(k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each a != b: z_T^j - z_T^a <= 0 (j != a) and z_S^j - z_S^b <= 0 (j != b)."""
    out = []
    for a in range(k):
        for b in range(k):
            if a == b:
                continue
            rows = []
            for j in range(k):
                if j != a:
                    r = np.zeros(2 * k)
                    r[j], r[a] = 1.0, -1.0
                    rows.append(r)
            for j in range(k):
                if j != b:
                    r = np.zeros(2 * k)
                    r[k + j], r[k + b] = 1.0, -1.0
                    rows.append(r)
            out.append((np.array(rows), np.zeros(len(rows))))
    return out


def gap_disjuncts(k: int, c: int, delta: float, sign: str, n_out: int) -> list:
    """g >= δ over the probability outputs (offset 2K teacher, 3K student)."""
    signs = {GapSign.TEACHER_MINUS_STUDENT: [1.0], GapSign.STUDENT_MINUS_TEACHER: [-1.0],
             GapSign.ABS: [1.0, -1.0]}  # fmt: skip
    out = []
    for s in signs[sign]:
        r = np.zeros(n_out)
        r[2 * k + c], r[3 * k + c] = -s, s  # -(s * (p_T - p_S)) <= -δ
        out.append((r[None], np.array([-delta])))
    return out


def with_softmax(model: onnx.ModelProto, k: int) -> onnx.ModelProto:
    """Append softmax of each network's logits: output [z_T, z_S, p_T, p_S] (1, 4K)."""
    g = model.graph
    y = g.output[0].name
    starts = {"t": 0, "s": k}
    for tag, s in starts.items():
        names = [f"{tag}_{n}" for n in ("start", "end", "axis")]
        for n, v in zip(names, (s, s + k, 1), strict=True):
            g.initializer.append(helper.make_tensor(n, TensorProto.INT64, [1], [v]))
        g.node.append(helper.make_node("Slice", [y, *names], [f"z_{tag}"]))
        g.node.append(helper.make_node("Softmax", [f"z_{tag}"], [f"p_{tag}"], axis=1))
    g.node.append(helper.make_node("Concat", [y, "p_t", "p_s"], ["y"], axis=1))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4 * k]))
    onnx.checker.check_model(model)
    return model


def export_pair(teacher, student, x0: np.ndarray, eps: float, cls: int, out_dir: str,
                prop: str = Property.AGREEMENT, delta: float = D.DELTA,
                gap_sign: str = D.GAP_SIGN, name: str = "pair",
                meta: dict | None = None, lo: float = 0.0, hi: float = 1.0,
                form: str = "product"):  # fmt: skip
    """Write ``<name>.onnx`` and ``<name>.vnnlib`` into out_dir (``form="robust"``:
    ``<name>_teacher.*`` and ``<name>_student.*``); returns the paths written.
    ``teacher``/``student``: canonical networks reading pixel-space input."""
    check_choice("--property", prop, PROPERTIES)
    check_choice("--gap-sign", gap_sign, GAP_SIGNS)
    check_choice("--form", form, EXPORT_FORMS)
    if not eps >= 0 or not delta >= 0:
        raise InputError("--eps and --delta must be >= 0")
    k = teacher.n_classes
    if not 0 <= cls < k:
        raise InputError(f"class {cls} is outside 0..{k - 1}")
    x0 = np.asarray(x0, np.float64).reshape(-1)
    box = np.clip(x0 - eps, lo, hi), np.clip(x0 + eps, lo, hi)
    if form == "robust":
        if prop != Property.AGREEMENT:
            raise InputError("--form robust states robust agreement: use --property agreement")
        return _export_robust(teacher, student, box, cls, Path(out_dir), name, meta or {}, eps)
    net, _, _ = product(teacher, student)
    model = to_onnx(net, {**(meta or {}), "fkd.property": prop, "fkd.eps": eps})
    n_out = 2 * k
    disjuncts = []
    if prop in (Property.AGREEMENT, Property.FAITHFUL):
        disjuncts += agreement_disjuncts(k)
    if prop in (Property.GAP, Property.FAITHFUL):
        model, n_out = with_softmax(model, k), 4 * k
        disjuncts = [(np.hstack([A, np.zeros((len(A), 2 * k))]), b) for A, b in disjuncts]
        disjuncts += gap_disjuncts(k, cls, delta, gap_sign, n_out)
    spec = Spec(*box, n_out, tuple(disjuncts))
    out = Path(out_dir)
    onnx_path, spec_path = _fresh(out, [f"{name}.onnx", f"{name}.vnnlib"])
    onnx.save(model, onnx_path)
    layout = f"Y_0..Y_{k - 1}: teacher logits; Y_{k}..Y_{2 * k - 1}: student logits"
    if n_out > 2 * k:
        layout += f"; Y_{2 * k}..: teacher, Y_{3 * k}..: student softmax"
    note = (f"fkdverify export: violation of '{prop}' (class {cls}, delta {delta}, {gap_sign})\n"
            f"eps {eps} around the test point; {layout}\nsat = counterexample exists")  # fmt: skip
    write_vnnlib(str(spec_path), spec, note)
    return str(onnx_path), str(spec_path)


def _fresh(out: Path, names: list[str]) -> list[Path]:
    """The paths in folder ``out`` (created), refused if any exists (nothing written)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder for the exported files")
    paths = [out / n for n in names]
    for p in paths:
        if p.exists():
            raise InputError(f"{p} exists; nothing was written: choose another --name or --out")
    out.mkdir(parents=True, exist_ok=True)
    return paths


def robustness_disjuncts(k: int, c: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """VNN-COMP's robustness violation at class c: for some j != c, Y_c - Y_j <= 0."""
    out = []
    for j in range(k):
        if j != c:
            r = np.zeros(k)
            r[c], r[j] = 1.0, -1.0
            out.append((r[None], np.zeros(1)))
    return out


def _export_robust(teacher, student, box, cls, out: Path, name, meta, eps) -> tuple[str, ...]:
    names = [f"{name}_{who}.{ext}" for who in ("teacher", "student") for ext in ("onnx", "vnnlib")]
    paths = _fresh(out, names)
    k = teacher.n_classes
    spec = Spec(*box, k, tuple(robustness_disjuncts(k, cls)))
    for (onnx_path, spec_path), (who, net) in zip(
        (paths[:2], paths[2:]), (("teacher", teacher), ("student", student)), strict=True
    ):
        onnx.save(to_onnx(net, {**meta, "fkd.role": who, "fkd.eps": eps}), onnx_path)
        note = (f"fkdverify export: robustness of the {who} at class {cls} (robust "
                f"agreement: both unsat)\neps {eps} around the test point\n"
                "sat = counterexample exists")  # fmt: skip
        write_vnnlib(str(spec_path), spec, note)
    return tuple(str(p) for p in paths)
