import sys

from rnnt.cli import main

sys.exit(main())
