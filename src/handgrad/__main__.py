import sys

from handgrad.cli import main

sys.exit(main())
