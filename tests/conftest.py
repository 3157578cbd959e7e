import sys
from pathlib import Path

# tests import shared builders as ``tests.helpers``-free top-level module
sys.path.insert(0, str(Path(__file__).parent))
