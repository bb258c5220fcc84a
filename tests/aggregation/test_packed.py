"""Items cut from one buffer remember their width and buffer only while unchanged."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable

import pytest

from headwater.aggregation.packed import Items, items, packed


def test_items_know_their_width_and_buffer() -> None:
    cut = items(b"aabbcc", 2)
    assert cut == [b"aa", b"bb", b"cc"]
    assert packed(cut) == (2, b"aabbcc")
    assert packed([b"aa", b"bb"]) is None  # a plain list: unknown
    assert packed(cut[1:]) is None  # a slice is a plain list
    assert items(b"", 3) == [] and packed(items(b"", 3)) is None


@pytest.mark.parametrize("change", [
    lambda s: s.__setitem__(0, b"x"), lambda s: s.append(b"dd"), lambda s: s.extend([b"d"]),
    lambda s: s.insert(0, b"d"), lambda s: s.pop(), lambda s: s.remove(b"aa"),
    lambda s: s.sort(reverse=True), lambda s: s.reverse(), lambda s: s.clear(),
    lambda s: s.__delitem__(0), lambda s: s.__iadd__([b"d"]), lambda s: s.__imul__(2),
])
def test_any_change_forgets_them(change: Callable[[Items], object]) -> None:
    cut = items(b"aabbcc", 2)
    assert isinstance(cut, Items)
    change(cut)
    assert packed(cut) is None


def test_a_copy_or_a_pickle_is_a_plain_list_of_the_same_states() -> None:
    cut = items(b"aabbcc", 2)
    copies = [copy.copy(cut), copy.deepcopy(cut),
              *(pickle.loads(pickle.dumps(cut, protocol)) for protocol in range(6))]
    for other in copies:
        assert type(other) is list and other == [b"aa", b"bb", b"cc"]
        assert packed(other) is None
