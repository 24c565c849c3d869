"""JobWidget.link: the one way a control follows a trait (and a user's change of the control
sets the trait, validated)."""
import ipywidgets as W
import pytest
import traitlets as T

from cnn_widgets.widgets._base import JobWidget
from cnn_widgets.widgets.validate import InvalidTrait, Whole, in_range


class Counter(JobWidget):
    n = Whole(3)

    def __init__(self, engine):
        super().__init__(engine)
        self.box = W.Text()
        self.seen = []
        self.link("n", self.box, show=str, take=int)
        self.children = [self.box, self.error]

    @T.validate("n")
    def _valid_n(self, proposal):
        return in_range("n", proposal["value"], 1, 9)

    @T.observe("n")
    def _on_state(self, change):
        self.seen.append(change["new"])


@pytest.fixture
def c(engine):
    w = Counter(engine)
    yield w
    w.close()


def test_the_control_shows_the_trait_and_follows_it(c):
    assert c.box.value == "3"
    c.n = 5
    assert c.box.value == "5" and c.seen == [5]             # no echo back into the trait


def test_a_change_of_the_control_sets_the_trait(c):
    c.box.value = "7"
    assert c.n == 7 and c.seen == [7] and c.error.value == ""


@pytest.mark.parametrize("typed,message", [("12", "n must be in 1..9; got 12"),
                                           ("x", "invalid literal for int")])
def test_a_refused_value_is_shown_and_stays_in_the_control_for_the_user_to_fix(c, typed, message):
    c.box.value = typed
    assert c.n == 3 and c.seen == [] and message in c.error.value
    assert c.box.value == typed                              # the typo is not wiped
    c.box.value = "4"
    assert c.n == 4 and c.error.value == ""                  # fixed: the error goes


def test_setting_a_refused_value_from_code_raises_and_leaves_the_control(c):
    with pytest.raises(InvalidTrait):
        c.n = 0
    assert c.box.value == "3"
