"""One exception hierarchy. Only ``cli.py`` turns these into messages and exit codes."""


class FkdError(Exception):
    """Base class: a problem the user can act on. ``str(e)`` is one line: what and what to do."""

    exit_code = 2


class InputError(FkdError):
    """A bad argument or option value."""


class ModelError(FkdError):
    """A network file that cannot be read or used."""


class UnsupportedOpError(ModelError):
    """An ONNX operator (or a use of one) the importer does not handle."""


class MismatchError(ModelError):
    """Teacher and student do not take the same input or give the same number of classes."""


class DataError(FkdError):
    """A dataset that cannot be found or read."""


class SolverError(FkdError):
    """A MILP back-end that is missing, unlicensed or failed."""


class SolverRefused(SolverError):
    """The back-end will not take this model (e.g. Gurobi's size-limited licence)."""


class WorkerError(FkdError):
    """The worker processes of ``--workers`` cannot start."""


class SoundnessError(FkdError):
    """An internal invariant of DESIGN.md section 2 broke (a bug): never written as a result."""

    exit_code = 3
