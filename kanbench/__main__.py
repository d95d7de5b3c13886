import sys

from kanbench.cli import main

sys.exit(main())
