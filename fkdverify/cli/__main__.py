"""``python -m fkdverify.cli``: the same as the ``fkdverify`` command."""

import sys

from . import main

sys.exit(main())
