"""Space descriptions round-trip exactly through the wire format."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from gym_remote.errors import SpaceError
from gym_remote.protocol import decode, encode
from gym_remote.spaces import space_from_dict, space_to_dict, validate_action

SPACES = [
    spaces.Box(-1.0, 1.0, (3,), np.float32),
    spaces.Box(np.array([-np.inf, 0.0]), np.array([np.inf, 5.5]), dtype=np.float64),
    spaces.Box(0, 255, (84, 84, 3), np.uint8),
    spaces.Box(-3, 3, (2, 2), np.int32),
    spaces.Discrete(5),
    spaces.Discrete(3, start=-1),
    spaces.MultiDiscrete([3, 4, 5]),
    spaces.MultiDiscrete(np.array([[2, 3], [4, 5]]), start=np.array([[1, 1], [0, -2]])),
    spaces.MultiBinary(6),
    spaces.MultiBinary([2, 3]),
    spaces.Text(12, min_length=2, charset="abc123"),
    spaces.Dict({"b": spaces.Discrete(2), "a": spaces.Box(-1, 1, (2,))}),
    spaces.Tuple((spaces.Discrete(2), spaces.Dict({"x": spaces.MultiBinary(3)}))),
]


def wire(space):
    header, buffers = encode(space_to_dict(space))
    return space_from_dict(decode(header, buffers))


@pytest.mark.parametrize("space", SPACES, ids=lambda s: type(s).__name__)
def test_every_space_kind_round_trips_exactly(space):
    out = wire(space)
    assert out == space
    assert type(out) is type(space)
    if isinstance(space, spaces.Box):
        assert out.dtype == space.dtype
        np.testing.assert_array_equal(out.low, space.low)
        np.testing.assert_array_equal(out.high, space.high)
    if isinstance(space, spaces.Dict):
        assert list(out.spaces) == list(space.spaces)  # order kept, not sorted


def test_unsupported_space_is_a_clear_error():
    class Hyperbolic(spaces.Space):  # a user-defined space: no schema on the wire
        pass

    with pytest.raises(SpaceError, match="Hyperbolic is not supported"):
        space_to_dict(Hyperbolic())
    with pytest.raises(SpaceError, match="unknown space type"):
        space_from_dict({"type": "Hyperbolic"})
    with pytest.raises(SpaceError, match="malformed Box"):
        space_from_dict({"type": "Box", "low": [0]})


@pytest.mark.parametrize(
    "space, action, match",
    [
        (spaces.Box(-1, 1, (3,), np.float32), np.zeros(2), "shape"),
        (spaces.Box(-1, 1, (3,), np.float32), ["a", "b", "c"], "not numeric"),
        (spaces.Box(-1, 1, (2,), np.int64), np.zeros(2), "integer"),
        (spaces.Discrete(3), 3, "outside"),
        (spaces.Discrete(3), 1.5, "integral"),
        (spaces.MultiDiscrete([2, 2]), [0, 2], "outside"),
        (spaces.Dict({"a": spaces.Discrete(2)}), {"b": 1}, "keys"),
    ],
)
def test_actions_that_do_not_fit_are_value_errors(space, action, match):
    with pytest.raises(ValueError, match=match):
        validate_action(space, action)


def test_fitting_actions_come_back_in_the_space_dtype():
    assert validate_action(spaces.Box(-1, 1, (2,), np.float32), [0.5, 2.0]).dtype == np.float32
    assert validate_action(spaces.Discrete(3, start=1), np.int32(3)) == 3
