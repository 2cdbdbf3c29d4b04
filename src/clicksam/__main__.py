"""``python -m clicksam`` (also what ``torchrun -m clicksam`` runs)."""
import sys

from clicksam.cli import main

sys.exit(main())
