"""``python -m lstmcor`` runs the command line."""
import sys

from lstmcor.cli import main

sys.exit(main())
