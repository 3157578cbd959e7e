import os
import sys
from pathlib import Path

from hypothesis import settings as hypothesis_settings

# tests import shared builders as ``tests.helpers``-free top-level module
sys.path.insert(0, str(Path(__file__).parent))

# CI explores the same examples on every run (a failure there reproduces by rerunning);
# locally hypothesis draws new ones each run and may find a case CI has not seen
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")
