import sys
from pathlib import Path

# The deployment tests read files at the repository root and import iiqsync from it,
# whether or not the package is installed and wherever pytest is started.
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
