import sys

from arena.ui.cli import main

sys.exit(main())
