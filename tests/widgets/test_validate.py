"""One trait validation for all widgets: a refused value raises an error that is both a
traitlets ``TraitError`` and the package's ``CnnWidgetsError``, and the old value stays."""
import numpy as np
import pytest
import traitlets as T

from cnn_widgets import EtalonGrid, FOVExplorer, InverseSetGallery, MaximizerPanel, PredictionTreeView
from cnn_widgets import objectives as O
from cnn_widgets.engine import CnnWidgetsError, InvalidArgument
from cnn_widgets.widgets.etalon_grid import Selection
from cnn_widgets.widgets.validate import InvalidTrait, dataset_rows, in_range, one_of, refused


def test_the_checks_pass_a_good_value_and_name_what_was_expected():
    assert in_range("steps", 5, 1, 10) == 5 and one_of("mode", "fool", ("maximize", "fool")) == "fool"
    with pytest.raises(InvalidTrait, match=r"^steps must be in 1\.\.10; got 0$"):
        in_range("steps", 0, 1, 10)
    with pytest.raises(InvalidTrait, match=r"^mode must be one of \['a', 'b'\] \(why\); got 'c'$"):
        one_of("mode", "c", ("a", "b"), " (why)")
    with pytest.raises(InvalidTrait, match="^layer: no such layer$") as info:
        with refused("layer: "):
            raise LookupError("no such layer")
    assert isinstance(info.value.__cause__, LookupError)
    with pytest.raises(RuntimeError), refused():            # not an engine refusal: as it is
        raise RuntimeError("a bug")



def test_dataset_rows_takes_ints_or_their_text_and_names_the_rows_in_its_errors():
    assert dataset_rows(np.array([3, 0]), 5, "image row") == [3, 0]
    assert dataset_rows(" 0, 2-3", 5, "image row") == [0, 2, 3]
    with pytest.raises(InvalidTrait, match=r"^indices must be a list of dataset rows .*; got 3$"):
        dataset_rows(3, 5, "image row")
    with pytest.raises(InvalidTrait, match=r"^image rows \[5, True\] out of range: the dataset "
                                           r"has 5 images \(0\.\.4\)$"):
        dataset_rows([0, 5, True], 5, "image row")
    with pytest.raises(InvalidTrait, match=r"^3 input rows asked for; at most 2 at once$"):
        dataset_rows([0, 1, 2], 5, "input row", limit=2)
    with pytest.raises(InvalidTrait, match=r"input row"):     # typed: refused as it is parsed
        dataset_rows("0-9", 5, "input row")

def test_invalid_trait_is_a_trait_error_and_the_packages_error():
    err = InvalidTrait("x")
    assert isinstance(err, T.TraitError) and isinstance(err, InvalidArgument)
    assert isinstance(err, CnnWidgetsError) and isinstance(err, ValueError)


class Counter(T.HasTraits):
    n = T.Int(1)
    mode = T.Unicode("a")

    @T.validate("n")
    def _valid_n(self, proposal):
        return in_range("n", proposal.value, 1, 9)

    @T.validate("mode")
    def _valid_mode(self, proposal):
        return one_of("mode", proposal.value, ("a", "b"))


def test_traitlets_takes_the_subclass_from_a_validator_and_keeps_the_old_value():
    c = Counter()
    with pytest.raises(InvalidTrait):
        c.n = 10
    assert c.n == 1
    with pytest.raises(InvalidTrait):                      # held: both set back at the end
        with c.hold_trait_notifications():
            c.n, c.mode = 5, "z"
    assert (c.n, c.mode) == (1, "a")


BAD = {
    EtalonGrid: [("indices", [0, 999]), ("indices", [0] * 5000), ("layer", "nope"),
                 ("units", [3, 10]), ("selected", Selection("grid", 10, 0))],
    FOVExplorer: [("row", 999), ("layer", "9"), ("unit", (99, 0, 0))],
    MaximizerPanel: [("steps", 0), ("lr", -1.0), ("optimizer", "lbfgs"), ("mode", "nope"),
                     ("start", "nope"), ("objective", O.channel("3", 99))],
    PredictionTreeView: [("category", 10), ("image", -1), ("layer", "9"), ("selected", 10 ** 6)],
    InverseSetGallery: [("K", 0), ("n", 10 ** 6), ("selected", 10 ** 6), ("constraints", [])],
}


@pytest.mark.parametrize("cls", list(BAD), ids=lambda c: c.__name__)
def test_every_widget_refuses_with_the_packages_error_and_keeps_the_old_value(engine, cls):
    w = cls(engine)
    try:
        for name, bad in BAD[cls]:
            before = getattr(w, name)
            with pytest.raises(T.TraitError) as info:
                setattr(w, name, bad)
            assert isinstance(info.value, CnnWidgetsError), (name, type(info.value))
            assert str(info.value), name                       # says what was expected
            assert getattr(w, name) == before, name
    finally:
        assert w.wait(60)
        w.close()
