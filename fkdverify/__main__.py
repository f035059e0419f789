"""``python -m fkdverify``: the same as the ``fkdverify`` command."""

import sys

from .cli import main

sys.exit(main())
