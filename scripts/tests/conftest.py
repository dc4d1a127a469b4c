"""Shared fixtures of the stack manager's unit tests (scripts/tests): no server runs, every run folder is a tmp_path."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
