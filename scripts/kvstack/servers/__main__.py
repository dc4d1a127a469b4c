"""`python3 -m kvstack.servers ARGS`: what scripts/servers.sh runs."""
import sys

from kvstack.servers.cli import main

sys.exit(main())
