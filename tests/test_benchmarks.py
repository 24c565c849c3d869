"""Every benchmark script still runs (``--quick``) and ends with one well-formed bar line per bar
(values are in benchmarks/README.md, not judged here: timings do not belong in tests)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
BAR = re.compile(r"^bar: [\w /+()-]+ = [0-9.e+-]+[a-z% ]* \(target (>=|<=) [0-9.e+-]+[a-z% ]*\) (ok|short)$")
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))
# bars a script must print even when a peer library is missing or the engine refuses the
# model (then as "short", naming the package or the error), never skip; classroom.py in
# --quick mode: the tour alone, from an empty cache
EXPECTED = {
    "etalons.py": ("lenet fast vs paper as written", "lenet fast / its kernels alone",
                   "lenet fast time / captum Saliency time", "vgg16 fast etalon",
                   "etalon grid stroke"),
    "maximize.py": ("vgg16 64px maximize / bare truncated loop",
                    "lenet 28px channel steps per s vs lucent", "live view slowdown"),
    "any_cnn.py": ("four reconstructions", "receptive fields of every unit",
                   "etalon of one logit"),
    "classroom.py": ("peak memory 00 (MB)", "tour first widget (s)"),
    "sanity.py": ("sanity cascade of 8 digits", "sanity cascade / the maps alone"),
    "memory.py": ("etalons peak memory / budget",),
    "maximizer_view.py": ("MaximizerPanel first result / fwd+bwd", "MaximizerPanel stop / fwd+bwd"),
    "first_view.py": ("etalon grid default view complete / fwd+bwd",) + tuple(
        f"{w} {what} / fwd+bwd" for w in ("EtalonGrid", "FOVExplorer", "MaximizerPanel",
                                          "PredictionTreeView", "InverseSetGallery",
                                          "SanityCheckView")
        for what in ("first result", "stop", "close")),
}


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_and_prints_bars(script):
    out = subprocess.run([sys.executable, str(BENCHMARKS / script), "--quick"],
                         capture_output=True, text=True, timeout=600, cwd=BENCHMARKS)
    assert out.returncode == 0, out.stderr[-3000:]
    bars = [line for line in out.stdout.splitlines() if line.startswith("bar:")]
    assert bars, out.stdout
    assert all(BAR.match(line) for line in bars), bars
    assert out.stdout.rstrip().splitlines()[-len(bars):] == bars     # the bars end the output
    for name in EXPECTED.get(script, ()):
        assert any(name in line for line in bars), (name, bars)
