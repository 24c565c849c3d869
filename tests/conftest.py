"""The repository's developer tools (``tools/``: the notebook runner) are not part of the
package; the tests import them from the checkout."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
