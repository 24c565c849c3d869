"""The model matrix on a few small torchvision models (the full matrix is
``python benchmarks/model_matrix.py --markdown``, the README's table): every capability either
works with its identity asserted, or raises a documented CnnWidgetsError subclass."""
import functools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import model_matrix  # noqa: E402

import cnn_widgets.engine as engine_api  # noqa: E402

# a graph (residual adds), a non-piecewise-linear model (Hardswish, squeeze-excitation),
# concatenating Fire modules, and timm's ResNet (functional BatchNormAct2d norms, random
# statistics: Algorithm 1's bias-free pass must zero their shift); small enough for every CI
# run (32x32 inputs)
MODELS = ("resnet18", "mobilenet_v3_small", "squeezenet1_1", "timm/resnet18d")


@functools.cache
def matrix_row(name):
    return model_matrix.run_model(name)


@pytest.mark.parametrize("cap", model_matrix.CAPABILITIES)
@pytest.mark.parametrize("name", MODELS)
def test_capability_works_or_is_refused_clearly(name, cap):
    size, cells, _ = matrix_row(name)
    cell = cells[cap]
    assert cell.status != "FAIL", cell.why
    if cell.status == "refused":
        cls = cell.why.split(":")[0]
        assert issubclass(getattr(engine_api, cls), engine_api.CnnWidgetsError), cell.why
        assert len(cell.why) > len(cls) + 20, f"a refusal must say why: {cell.why}"


def test_a_non_piecewise_linear_model_gets_its_jacobian_flagged():
    assert matrix_row("mobilenet_v3_small")[1]["etalons"].status == "Jacobian"
    assert matrix_row("resnet18")[1]["etalons"].status == "exact"


def test_timms_resnet_is_exact_as_its_torchvision_twin():
    cells = matrix_row("timm/resnet18d")[1]
    assert {cap: cells[cap].status for cap in ("etalons", "paper", "field", "reconstruct",
                                               "regions")} == dict.fromkeys(
        ("etalons", "paper", "field", "reconstruct", "regions"), "exact")


def test_a_wrong_identity_is_caught():
    """The checks can fail: a map off by one part in a thousand is reported."""
    with pytest.raises(AssertionError, match="W vs"):
        model_matrix._close([1.0, 2.0], [1.0, 2.002], "W vs")


def test_markdown_table_has_a_row_per_model_and_footnotes():
    rows = [(n, matrix_row(n)[0], matrix_row(n)[1]) for n in MODELS]
    table = model_matrix.markdown(rows)
    lines = table.splitlines()
    assert lines[0].startswith("| models | input | etalons | paper |")
    assert all(any(n in line.split(" | ")[0] for line in lines[2:]) for n in MODELS)
    for k in {c.why and model_matrix._why_key(c.why) for _, _, cells in rows
              for c in cells.values() if c.status in ("refused", "FAIL")}:
        assert any(k in line for line in lines), k
