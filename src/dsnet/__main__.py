"""``python -m dsnet`` (also what ``torchrun -m dsnet`` runs)."""

import sys

from .cli import main

sys.exit(main())
