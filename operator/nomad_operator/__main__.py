import sys

from nomad_operator.cli import main

sys.exit(main())
