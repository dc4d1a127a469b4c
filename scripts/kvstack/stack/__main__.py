import sys

from kvstack.stack.cli import main

sys.exit(main())
