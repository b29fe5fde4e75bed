"""`python -m ml.pinn SPEC.yaml [--out DIR]`: run a PINN spec and print its summary."""

import sys

from ml.pinn.trainer import main

sys.exit(main())
