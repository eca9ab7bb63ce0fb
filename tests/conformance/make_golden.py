"""Regenerate tests/conformance/golden/*.json from the scenarios (review the diff!).

.venv/bin/python tests/conformance/make_golden.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_scenarios import write_all

if __name__ == "__main__":
    for path in write_all():
        print(path)
