"""VNN-LIB (the VNN-COMP subset): read and write.

A spec declares inputs ``X_i`` and outputs ``Y_j``, bounds every input by a box, and states
the *unsafe* output region as a disjunction of conjunctions of linear atoms over Y. The spec
is ``sat`` when some input in the box reaches the unsafe region (a counterexample), ``unsat``
when none does (the property holds). Supported: ``(assert (<= X_i c))`` / ``(>= ...)`` (also
as ``(and ...)`` of them), and output formulas built from ``or``, ``and`` and atoms
``(<= e e)``, ``(>= e e)``, ``(< e e)``, ``(> e e)`` where ``e`` is a linear term in Y
(``Y_j``, numbers, ``+``, ``-``, ``*`` by a constant). Several output asserts are a conjunction.
Strict and non-strict comparisons are treated alike (closures), as VNN-COMP does.
"""

from __future__ import annotations

import gzip
import itertools
import re
import zlib
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_VAR = re.compile(r"^([XY])_(\d+)$")


@dataclass(frozen=True, eq=False)
class Spec:
    """Input box [lo, hi] (n_in,) and the unsafe region: the union over k of
    {y : A_k y <= b_k}, with disjuncts[k] = (A_k (m_k, n_out), b_k (m_k,))."""

    lo: np.ndarray
    hi: np.ndarray
    n_out: int
    disjuncts: tuple[tuple[np.ndarray, np.ndarray], ...]

    @property
    def n_in(self) -> int:
        return len(self.lo)

    def holds_at(self, y: np.ndarray) -> int | None:
        """Index of the first disjunct that y satisfies exactly (no tolerance), or None."""
        for k, (A, b) in enumerate(self.disjuncts):
            if np.all(A @ y <= b):
                return k
        return None


def _parse(text: str, where: str) -> list:
    """S-expressions of the file (comments removed) as nested lists of strings."""
    text = re.sub(r";[^\n]*", "", text)
    stack: list[list] = [[]]
    for tok in _TOKEN.findall(text):
        if tok == "(":
            stack.append([])
        elif tok == ")":
            if len(stack) == 1:
                raise InputError(f"{where}: unbalanced ')' in VNN-LIB")
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(tok)
    if len(stack) != 1:
        raise InputError(f"{where}: unbalanced '(' in VNN-LIB (file cut short?)")
    return stack[0]


def read_text(path: str) -> str:
    try:
        if str(path).endswith(".gz"):
            with gzip.open(path, "rt") as f:
                return f.read()
        with open(path) as f:
            return f.read()
    except OSError as e:
        raise InputError(f"cannot read VNN-LIB file {path}: {e.strerror or e}") from None
    except zlib.error as e:
        raise InputError(f"{path} is a corrupt .gz file ({e}); fetch it again") from None
    except EOFError:
        raise InputError(f"{path} ends early (a cut-short .gz?); fetch the file again") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a text VNN-LIB file") from None


def read_vnnlib(path: str) -> Spec:
    """Parse a .vnnlib or .vnnlib.gz file."""
    return parse_vnnlib(read_text(path), str(path))


def parse_vnnlib(text: str, where: str = "<vnnlib>") -> Spec:
    n = {"X": 0, "Y": 0}
    box: dict[int, list[float]] = {}
    outputs: list[list[list]] = []  # each assert: DNF as [[atoms]]
    for form in _parse(text, where):
        if not isinstance(form, list) or not form:
            raise InputError(f"{where}: unexpected {form!r} at the top level")
        head = form[0]
        if head == "declare-const":
            m = _VAR.match(form[1]) if len(form) == 3 else None
            if not m:
                raise InputError(f"{where}: only X_i / Y_j Real constants are supported: {form}")
            n[m[1]] = max(n[m[1]], int(m[2]) + 1)
        elif head == "assert":
            if len(form) != 2:
                raise InputError(f"{where}: (assert ...) takes one formula")
            dnf = _dnf(form[1], where)
            inputs = [a for conj in dnf for a in conj if a[0] == "X"]
            if inputs:
                if len(dnf) != 1 or len(inputs) != len(dnf[0]):
                    raise InputError(
                        f"{where}: input constraints inside (or ...) or mixed with output "
                        "constraints are not supported (input boxes only)"
                    )
                for _, i, sense, c in inputs:
                    b = box.setdefault(i, [-np.inf, np.inf])
                    b[1 if sense == "<=" else 0] = (min if sense == "<=" else max)(
                        b[1 if sense == "<=" else 0], c
                    )
            else:
                outputs.append(dnf)
        elif head in ("set-logic", "set-info", "check-sat", "get-model", "exit"):
            continue
        else:
            raise InputError(f"{where}: unsupported VNN-LIB command ({head} ...)")
    return _spec(n, box, outputs, where)


def _spec(n, box, outputs, where) -> Spec:
    if n["X"] == 0 or n["Y"] == 0:
        raise InputError(f"{where}: no X_i / Y_j declared")
    lo, hi = np.full(n["X"], -np.inf), np.full(n["X"], np.inf)
    for i, (a, b) in box.items():
        if i >= n["X"]:
            raise InputError(f"{where}: X_{i} is used but not declared")
        lo[i], hi[i] = a, b
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        i = int(np.flatnonzero(~(np.isfinite(lo) & np.isfinite(hi)))[0])
        raise InputError(f"{where}: X_{i} has no lower or upper bound (a box is required)")
    if np.any(lo > hi):
        i = int(np.flatnonzero(lo > hi)[0])
        raise InputError(f"{where}: X_{i} has an empty range [{lo[i]}, {hi[i]}]")
    if not outputs:
        raise InputError(f"{where}: no output constraint (assert over Y) in the spec")
    disjuncts = []
    for combo in itertools.product(*outputs):  # a conjunction of the asserts' DNFs
        atoms = [a for conj in combo for a in conj]
        A = np.zeros((len(atoms), n["Y"]))
        b = np.zeros(len(atoms))
        for r, (_, coef, c) in enumerate(atoms):
            for j, v in coef.items():
                if j >= n["Y"]:
                    raise InputError(f"{where}: Y_{j} is used but not declared")
                A[r, j] = v
            b[r] = c
        disjuncts.append((A, b))
    return Spec(lo, hi, n["Y"], tuple(disjuncts))


def _dnf(f, where) -> list[list]:
    """A formula as a list of conjunctions of atoms. Atom: ("X", i, "<="|">=", c) for an input
    bound, ("Y", {j: coef}, b) for sum coef*Y_j <= b."""
    if not isinstance(f, list) or not f:
        raise InputError(f"{where}: expected a formula, got {f!r}")
    op = f[0]
    if op == "or":
        return [conj for g in f[1:] for conj in _dnf(g, where)]
    if op == "and":
        out = [[]]
        for g in f[1:]:
            out = [a + b for a in out for b in _dnf(g, where)]
        return out
    if op in ("<=", ">=", "<", ">") and len(f) == 3:
        return [[_atom(op, f[1], f[2], where)]]
    raise InputError(f"{where}: unsupported formula ({op} ...): only or/and of <=, >=, <, >")


def _atom(op, lhs, rhs, where):
    le = op in ("<=", "<")
    (cl, kl), (cr, kr) = _linear(lhs, where), _linear(rhs, where)
    names = {v[0] for v in (*cl, *cr)}
    if "X" in names:
        # input bound: one X against a constant
        if names != {"X"} or len(cl) + len(cr) != 1:
            raise InputError(f"{where}: only bounds X_i <= c / X_i >= c are supported on inputs")
        (var, coef), const = (next(iter(cl.items())), kr) if cl else (next(iter(cr.items())), kl)
        if coef != 1.0:
            raise InputError(f"{where}: only bounds X_i <= c / X_i >= c are supported on inputs")
        sense = ("<=" if le else ">=") if cl else (">=" if le else "<=")
        return ("X", var[1], sense, const if cl else kl)
    # lhs <= rhs  <=>  (cl - cr) . y <= kr - kl
    coef: dict[int, float] = {}
    sign = 1.0 if le else -1.0
    for side, s in ((cl, 1.0), (cr, -1.0)):
        for (_, j), v in side.items():
            coef[j] = coef.get(j, 0.0) + sign * s * v
    return ("Y", coef, sign * (kr - kl))


def _linear(e, where) -> tuple[dict, float]:
    """({(name, index): coef}, constant) of a linear term."""
    if isinstance(e, str):
        m = _VAR.match(e)
        if m:
            return {(m[1], int(m[2])): 1.0}, 0.0
        try:
            return {}, float(e)
        except ValueError:
            raise InputError(f"{where}: unknown symbol {e!r}") from None
    if not e:
        raise InputError(f"{where}: empty term ()")
    op, args = e[0], [_linear(a, where) for a in e[1:]]
    if op == "+":
        return _sum(args), sum(k for _, k in args)
    if op == "-":
        if len(args) == 1:
            return {v: -c for v, c in args[0][0].items()}, -args[0][1]
        neg = [({v: -c for v, c in t.items()}, -k) for t, k in args[1:]]
        rest = [args[0], *neg]
        return _sum(rest), sum(k for _, k in rest)
    if op == "*":
        consts = [a for a in args if not a[0]]
        terms = [a for a in args if a[0]]
        if len(terms) > 1:
            raise InputError(f"{where}: non-linear term {e}")
        scale = float(np.prod([k for _, k in consts]))
        if not terms:
            return {}, scale
        t, k = terms[0]
        return {v: c * scale for v, c in t.items()}, k * scale
    raise InputError(f"{where}: unsupported operator {op!r} in a term")


def _sum(args) -> dict:
    out: dict = {}
    for t, _ in args:
        for v, c in t.items():
            out[v] = out.get(v, 0.0) + c
    return out


def write_vnnlib(path: str, spec: Spec, comment: str = "") -> None:
    """Write a spec in the form every VNN-COMP tool reads (an input box, one output assert:
    an ``or`` of ``and``s of ``(<= (+ (* a Y_j) ...) b)`` atoms; a single ``Y_j``/``Y_i``
    difference is written as ``(<= Y_j Y_i)``)."""
    lines = [f"; {line}" for line in comment.splitlines()]
    lines += [f"(declare-const X_{i} Real)" for i in range(spec.n_in)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(spec.n_out)]
    for i in range(spec.n_in):
        lines.append(f"(assert (<= X_{i} {float(spec.hi[i])!r}))")
        lines.append(f"(assert (>= X_{i} {float(spec.lo[i])!r}))")
    conj = []
    for A, b in spec.disjuncts:
        conj.append("(and " + " ".join(_write_atom(a, c) for a, c in zip(A, b, strict=True)) + ")")
    lines.append("(assert (or\n    " + "\n    ".join(conj) + "\n))")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _write_atom(a: np.ndarray, c: float) -> str:
    nz = np.flatnonzero(a)
    if c == 0 and len(nz) == 2 and sorted(a[nz]) == [-1.0, 1.0]:
        pos, neg = (nz[0], nz[1]) if a[nz[0]] > 0 else (nz[1], nz[0])
        return f"(<= Y_{pos} Y_{neg})"
    terms = " ".join(f"(* {float(a[j])!r} Y_{j})" for j in nz)
    return f"(<= (+ {terms}) {float(c)!r})"
