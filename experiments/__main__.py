"""``python -m experiments`` is the ``banditjax`` command."""
import sys

from experiments.cli import main

sys.exit(main())
