"""Small JSON requests of float columns in a layout decoded lately (``JsonLayouts``): read
from their numbers alone, to exactly what the whole decoding gives; anything else decoded
(or refused) the whole way as before."""

from __future__ import annotations

import json
import math
import random
import struct
from typing import Any

import orjson
import pytest

from _v2 import assert_same_request
from dockyard.errors import InvalidRequestError
from dockyard.server.protocols import v2
from dockyard.server.protocols.json_numbers import SMALL_BYTES, JsonNumbers
from dockyard.server.protocols.v2.layouts import LAYOUTS, LEARN_EVERY


def _columns(values: list[Any], *, datatype: str = "FP64", rows: int = 1, **top: Any) -> bytes:
    """A request of one column per ``rows`` values, named ``x0``, ``x1``, ... (MLServer's
    and kserve's spacing: ``json.dumps``)."""
    inputs = [
        {"name": f"x{i}", "shape": [rows], "datatype": datatype, "data": values[at : at + rows]}
        for i, at in enumerate(range(0, len(values), rows))
    ]
    return json.dumps({**top, "inputs": inputs}).encode()


def _layouts(body: bytes, matched: bool = False) -> v2.JsonLayouts:
    """Layouts that hold ``body``'s, learned as the server learns them; ``matched``: and
    matched once since, so that a small column layout is matched by its pattern from then
    on (before, by splitting the body: both ways must read alike)."""
    layouts = v2.JsonLayouts()
    v2.decode_request(body, layouts=layouts)
    assert len(layouts) == 1
    if matched:
        assert layouts.decode(body) is not None
    return layouts


WAYS = pytest.mark.parametrize("matched", [False, True], ids=["split", "pattern"])
"""A small column layout read the first time it is matched, and every time after."""


def _with_numbers(body: bytes, *numbers: bytes) -> bytes:
    """``body`` with its ``data`` arrays' contents replaced, in turn, by ``numbers``."""
    opening = b'"data": [' if b'"data": [' in body else b'"data":['
    head, *pieces = body.split(opening)
    changed = [numbers[i] + piece[piece.find(b"]") :] for i, piece in enumerate(pieces)]
    return opening.join([head, *changed])


FIRST = _columns([0.5, -1.25, 3.0, 7e-3])


@pytest.mark.parametrize(
    "numbers",
    [
        (b"1.5", b"-2.75", b"0", b"123456789"),
        (b"-0.0", b"1e300", b"-2.5E-7", b"4"),
        (b" 0.125 ", b"-9007199254740993", b"1e-320", b"6.02214076e23"),
        (b"123456789012345678901234567890", b"1", b"2", b"3"),  # orjson: a float, both ways
    ],
    ids=["other numbers", "signs and exponents", "spacing, integers, subnormals", "64 bits"],
)
@WAYS
def test_a_request_in_a_layout_decoded_before_gives_what_decoding_it_whole_gives(
    numbers: tuple[bytes, ...], matched: bool
) -> None:
    layouts = _layouts(FIRST, matched)
    body = _with_numbers(FIRST, *numbers)

    taken = layouts.decode(body)

    assert taken is not None  # read from the layout
    assert_same_request(taken, v2.decode_request(body))
    assert_same_request(v2.decode_request(body, layouts=layouts), v2.decode_request(body))


@pytest.mark.parametrize(
    "first",
    [
        # MLServer's pandas codec: the request's content type, columns of shape [rows, 1]
        b'{"parameters":{"content_type":"pd"},"inputs":[{"name":"x0","shape":[1,1],'
        b'"datatype":"FP64","data":[0.5]},{"name":"x1","shape":[1,1],"datatype":"FP64",'
        b'"data":[-1.25]}]}',
        FIRST[:-1] + b', "outputs": [{"name": "predict", "parameters": {"binary_data": true}}]}',
        FIRST[:-1] + b', "id": "r-1"}',  # an id, but not first: the same in every request
    ],
    ids=["MLServer's pandas codec", "outputs", "an id last"],
)
def test_the_rest_of_a_request_is_remembered_with_its_layout(first: bytes) -> None:
    layouts = _layouts(first)
    body = _with_numbers(first, b"7", b"8", b"9", b"10")

    taken = layouts.decode(body)

    assert taken is not None
    assert_same_request(taken, v2.decode_request(body))


@WAYS
def test_rows_of_several_values_are_read_a_column_at_a_time(matched: bool) -> None:
    first = _columns([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], rows=3)
    layouts = _layouts(first, matched)
    body = _with_numbers(first, b"7, 8, 9.5", b"-1,0,1e3")

    taken = layouts.decode(body)

    assert taken is not None
    assert_same_request(taken, v2.decode_request(body))
    assert v2.tabular_input(taken, ["x0", "x1"]).tolist() == [  # type: ignore[union-attr]
        [7.0, -1.0],
        [8.0, 0.0],
        [9.5, 1000.0],
    ]


def test_an_fp32_layout_converts_as_the_column_path_does() -> None:
    first = _columns([0.5, 1.5], datatype="FP32")
    layouts = _layouts(first)
    body = _with_numbers(first, b"0.1", b"3")

    taken = layouts.decode(body)

    assert taken is not None
    assert_same_request(taken, v2.decode_request(body))


@pytest.mark.parametrize(
    "numbers",
    [
        (b"null", b"1", b"2", b"3"),  # NaN: the per-input path reads it
        (b"NaN", b"1", b"2", b"3"),  # Python's literal: the slower parser reads it
        (b"Infinity", b"1", b"2", b"3"),
        (b'"1"', b"1", b"2", b"3"),  # a string
        (b"true", b"1", b"2", b"3"),
        (b"[1]", b"1", b"2", b"3"),  # nested
        (b"1, 2", b"", b"2", b"3"),  # two values and none: as many in all
        (b"1, 2", b"1", b"2", b"3"),  # a value more
        (b"", b"1", b"2", b"3"),  # a value short
        (b"1e400", b"1", b"2", b"3"),  # beyond float64
        (b"1.", b"1", b"2", b"3"),  # not JSON
        (b'1], "x": [2', b"1", b"2", b"3"),  # the structure changed inside a data array
    ],
)
@WAYS
def test_a_request_the_layout_cannot_read_goes_the_whole_way(
    numbers: tuple[bytes, ...], matched: bool
) -> None:
    layouts = _layouts(FIRST, matched)
    body = _with_numbers(FIRST, *numbers)

    assert layouts.decode(body) is None
    _assert_decodes_as_without_layouts(body, layouts)


@WAYS
def test_columns_of_several_rows_a_value_apart_are_refused_as_before(matched: bool) -> None:
    first = _columns([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], rows=3)
    layouts = _layouts(first, matched)
    body = _with_numbers(first, b"1, 2", b"3, 4, 5, 6")  # as many values in all

    assert layouts.decode(body) is None
    with pytest.raises(InvalidRequestError):
        v2.decode_request(body, layouts=layouts)


@pytest.mark.parametrize(
    "body",
    [
        FIRST.replace(b'"x3"', b'"y3"'),  # another name
        FIRST.replace(b'"data": [0.007]', b'"data":[0.007]'),  # other spacing
        FIRST.replace(
            b'"shape": [1], "datatype": "FP64", "data": [0.5]',
            b'"shape": [2], "datatype": "FP64", "data": [0.5, 1]',
        ),  # another shape
        FIRST.replace(b"FP64", b"FP32"),
        FIRST[:-1] + b', "id": "r-1"}',
        FIRST[:-1] + b', "outputs": [{"name": "predict"}]}',
        FIRST.replace(b'{"inputs"', b'{"parameters": {"data": [1]}, "inputs"'),
    ],
    ids=["name", "spacing", "shape", "datatype", "id", "outputs", "a data key elsewhere"],
)
@WAYS
def test_a_request_in_another_layout_goes_the_whole_way(body: bytes, matched: bool) -> None:
    layouts = _layouts(FIRST, matched)

    assert layouts.decode(body) is None
    _assert_decodes_as_without_layouts(body, layouts)


def _assert_decodes_as_without_layouts(
    body: bytes, layouts: v2.JsonLayouts, numbers: JsonNumbers | None = None
) -> None:
    """``body`` decodes with ``layouts`` (and ``numbers``, the server's simdjson reader of
    large bodies) to what it decodes to without either, or all refuse it with the same
    error."""
    outcomes = []
    for given, reader in ((None, None), (None, numbers), (layouts, numbers)):
        try:
            outcomes.append(v2.decode_request(body, layouts=given, numbers=reader))
        except InvalidRequestError as refused:
            outcomes.append(refused.to_dict())
    expected, *got = outcomes
    for outcome in got:
        if isinstance(expected, dict):
            assert outcome == expected
        else:
            assert_same_request(outcome, expected)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    [
        FIRST.replace(b'"x1"', b'"x\\u0031"'),  # a backslash: the bytes do not tell strings
        FIRST.replace(b'"x1"', b'"data"'),  # a "data" that is not a key
        FIRST.replace(b'"data": [0.007]', b'"data":[0.007]'),  # spaced two ways
        orjson.dumps(
            {
                "inputs": [
                    {"name": "a", "shape": [2, 1], "datatype": "FP64", "data": [[1.5], [2]]},
                    {"name": "b", "shape": [2, 1], "datatype": "FP64", "data": [[3], [4]]},
                ]
            }
        ),  # a row an array: its numbers would be in the layout's bytes
        orjson.dumps(
            {"inputs": [{"name": "t", "shape": [1, 2], "datatype": "INT64", "data": [1, 2]}]}
        ),
        orjson.dumps(
            {"inputs": [{"name": "t", "shape": [1, 1, 2], "datatype": "FP64", "data": [1, 2]}]}
        ),
        orjson.dumps({"inputs": [{"name": "t", "shape": [0, 2], "datatype": "FP64", "data": []}]}),
        orjson.dumps(
            {
                "inputs": [
                    {"name": "t", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]},
                    {"name": "u", "shape": [1, 2], "datatype": "FP64", "data": [3, 4]},
                ]
            }
        ),
        orjson.dumps(
            {
                "inputs": [
                    {"name": "t", "shape": [600, 2], "datatype": "FP64", "data": [1.25] * 1200}
                ]
            }
        ),
        orjson.dumps(
            {
                "inputs": [
                    {"name": "a", "shape": [1], "datatype": "FP64", "data": [1.5]},
                    {"name": "b", "shape": [1], "datatype": "INT64", "data": [2]},
                ]
            }
        ),
    ],
    ids=[
        "backslash",
        "data as a name",
        "spacing",
        "rows nested",
        "integer tensor",
        "3-D tensor",
        "empty tensor",
        "two tensors",
        "large tensor",
        "mixed datatypes",
    ],
)
def test_only_requests_of_float_columns_or_one_small_float_tensor_are_remembered(
    body: bytes,
) -> None:
    layouts = v2.JsonLayouts()

    v2.decode_request(body, layouts=layouts)

    assert len(layouts) == 0


def _assert_read_with_its_own_id(
    layouts: v2.JsonLayouts, body: bytes, numbers: JsonNumbers | None = None
) -> None:
    """``body``, a learned request with other numbers and its leading id's first eight
    characters ``00000000``, is read from the layout, with its own id."""
    taken = layouts.decode(body, numbers)

    assert taken is not None
    assert taken.id is not None
    assert taken.id.startswith("00000000-")
    assert_same_request(taken, v2.decode_request(body))


def test_requests_that_differ_in_their_leading_id_share_a_layout() -> None:
    first = _columns([0.5, -1.25, 3.0], id="6b1f0c1e-4c5e-4b0e-9d8e-0d7c4e1f2a3b")
    body = _with_numbers(first, b"1", b"2", b"3").replace(b"6b1f0c1e", b"00000000")

    _assert_read_with_its_own_id(_layouts(first), body)


@pytest.mark.parametrize(
    "id_member",
    [
        b'"id": "a", "id": "b", ',  # a duplicate key: the parser keeps the last
        b'"id": "a\\u0062", ',  # an escape
        b'"id": "\xff", ',  # not UTF-8
        b'"id": "a\x01", ',  # a control character: not JSON
    ],
    ids=["duplicate", "escape", "not UTF-8", "control character"],
)
def test_a_leading_id_the_split_cannot_take_goes_the_whole_way(id_member: bytes) -> None:
    first = _columns([0.5, -1.25, 3.0], id="r")
    layouts = _layouts(first)
    body = first.replace(b'"id": "r", ', id_member)

    assert layouts.decode(body) is None
    _assert_decodes_as_without_layouts(body, layouts)


def test_a_request_with_its_id_twice_is_not_remembered() -> None:
    """The parser keeps the last of a duplicate key, so such a request's id is not the one
    the split takes out: learned from, the next such request would get its first id."""
    first = _columns([0.5, -1.25, 3.0], id="r").replace(b'"id": "r", ', b'"id": "a", "id": "b", ')
    layouts = v2.JsonLayouts()
    v2.decode_request(first, layouts=layouts)
    body = first.replace(b'"id": "a"', b'"id": "c"')

    assert len(layouts) == 0
    _assert_decodes_as_without_layouts(body, layouts)
    assert v2.decode_request(body, layouts=layouts).id == "b"


def test_a_body_other_than_bytes_goes_the_whole_way() -> None:
    layouts = _layouts(FIRST)
    body = bytearray(_with_numbers(FIRST, b"1", b"2", b"3", b"4"))

    assert layouts.decode(body) is None  # type: ignore[arg-type]
    _assert_decodes_as_without_layouts(body, layouts)  # type: ignore[arg-type]


def test_requests_never_share_their_values() -> None:
    layouts = _layouts(FIRST)
    one = layouts.decode(_with_numbers(FIRST, b"1", b"2", b"3", b"4"))
    two = layouts.decode(_with_numbers(FIRST, b"5", b"6", b"7", b"8"))
    assert one is not None
    assert two is not None

    one.inputs.values[0, 0] = 100.0  # type: ignore[union-attr]

    assert one.inputs.values.flags.writeable  # type: ignore[union-attr]
    assert two.inputs.values.tolist() == [[5.0, 6.0, 7.0, 8.0]]  # type: ignore[union-attr]


def test_a_full_memory_starts_over_so_many_layouts_stay_bounded() -> None:
    layouts = v2.JsonLayouts(every=1)
    for i in range(LAYOUTS + 5):
        v2.decode_request(_columns([1.0, 2.0], model_name=f"m{i}"), layouts=layouts)
        assert 1 <= len(layouts) <= LAYOUTS

    assert len(layouts) == 5  # started over at LAYOUTS


def test_layouts_that_keep_changing_are_learned_once_in_so_many_requests() -> None:
    layouts = _layouts(FIRST)
    other = FIRST.replace(b'"x3"', b'"y3"')  # the same first bytes: it would replace FIRST's

    for _ in range(LEARN_EVERY - 1):
        v2.decode_request(other, layouts=layouts)
        assert layouts.decode(other) is None
        assert layouts.decode(FIRST) is not None
    v2.decode_request(other, layouts=layouts)

    assert layouts.decode(other) is not None
    assert layouts.decode(FIRST) is None


# Large requests (simdjson's, from SMALL_BYTES): twenty columns of a hundred rows.

ROWS = 100
LARGE = _columns([round((i * 0.37) % 5 - 2.5, 6) for i in range(20 * ROWS)], rows=ROWS)
_CONTENTS = LARGE.split(b'"data": [')[1].split(b"]")[0]  # the first column's numbers


def _large_layouts(body: bytes) -> tuple[v2.JsonLayouts, JsonNumbers]:
    """Layouts that hold ``body``'s, learned as the server learns a large body's: after
    simdjson read it (``JsonNumbers``)."""
    layouts, numbers = v2.JsonLayouts(), JsonNumbers()
    v2.decode_request(body, layouts=layouts, numbers=numbers)
    assert len(layouts) == 1
    return layouts, numbers


def _first_column(body: bytes, contents: bytes) -> bytes:
    """``body`` with its first ``data`` array's contents replaced by ``contents``."""
    return _with_numbers(body, contents, *[_CONTENTS] * 19)


def test_a_large_request_in_a_layout_gives_what_decoding_it_whole_gives() -> None:
    assert len(LARGE) > SMALL_BYTES
    layouts, numbers = _large_layouts(LARGE)
    body = _with_numbers(
        LARGE,
        b", ".join([b"-0.0", b"1e300", b"-2.5E-7", b"4", b"1e-320", b"18446744073709551615"] * 16)
        + b", 1, 2, 3, 4",
        *[b",".join(str(i * 1000 + j).encode() for j in range(ROWS)) for i in range(19)],
    )

    taken = layouts.decode(body, numbers)

    assert taken is not None  # read from the layout
    assert_same_request(taken, v2.decode_request(body))
    assert_same_request(taken, v2.decode_request(body, numbers=JsonNumbers()))
    assert layouts.decode(body) is None  # without simdjson a large body goes the whole way
    assert taken.inputs.values.flags.writeable  # type: ignore[union-attr]


def test_a_large_fp32_layout_converts_as_the_whole_way_does() -> None:
    first = LARGE.replace(b"FP64", b"FP32")
    layouts, numbers = _large_layouts(first)
    body = _first_column(first, b", ".join([b"0.1", b"3", b"-1e38"] * 33) + b", 7")
    overflow = _first_column(first, b", ".join([b"1e39"] * ROWS))

    taken = layouts.decode(body, numbers)

    assert taken is not None
    assert_same_request(taken, v2.decode_request(body))
    assert layouts.decode(overflow, numbers) is None
    _assert_decodes_as_without_layouts(overflow, layouts, numbers)


def test_a_large_request_with_its_own_leading_id_shares_a_layout() -> None:
    first = LARGE.replace(b"{", b'{"id": "6b1f0c1e-4c5e", ', 1)
    layouts, numbers = _large_layouts(first)
    body = _first_column(first, _CONTENTS.replace(b"0", b"1")).replace(b"6b1f0c1e", b"00000000")

    _assert_read_with_its_own_id(layouts, body, numbers)


_VALUES = _CONTENTS.split(b", ")


@pytest.mark.parametrize(
    "contents",
    [
        b", ".join([b"null", *_VALUES[1:]]),
        b", ".join([b"NaN", *_VALUES[1:]]),
        b", ".join([b'"1"', *_VALUES[1:]]),
        b", ".join([b"true", *_VALUES[1:]]),
        b", ".join([b'{"a": 1}', *_VALUES[1:]]),
        b", ".join([b"[1", *_VALUES[1:]]),  # an array opened in the contents, closed by theirs
        b", ".join([b"1e400", *_VALUES[1:]]),
        b", ".join([b"123456789012345678901234567890", *_VALUES[1:]]),  # past 64 bits
        b", ".join([b"1.", *_VALUES[1:]]),
        b", ".join(_VALUES[1:]),  # a value short
        b", ".join([b"1", *_VALUES]),  # a value more
        b"",
        b", ".join([*_VALUES[1:], b'1], "x": [2']),  # the structure changed inside the array
    ],
    ids=[
        "null",
        "NaN",
        "string",
        "true",
        "object",
        "nested",
        "beyond float64",
        "past 64 bits",
        "not JSON",
        "short",
        "more",
        "empty",
        "structure",
    ],
)
def test_a_large_request_the_layout_cannot_read_goes_the_whole_way(contents: bytes) -> None:
    layouts, numbers = _large_layouts(LARGE)
    body = _first_column(LARGE, contents)

    assert layouts.decode(body, numbers) is None
    _assert_decodes_as_without_layouts(body, layouts, numbers)


def test_large_columns_a_value_apart_with_as_many_in_all_go_the_whole_way() -> None:
    layouts, numbers = _large_layouts(LARGE)
    body = _with_numbers(
        LARGE, b", ".join([b"1", *_VALUES]), b", ".join(_VALUES[1:]), *[_CONTENTS] * 18
    )

    assert layouts.decode(body, numbers) is None
    _assert_decodes_as_without_layouts(body, layouts, numbers)


@pytest.mark.parametrize(
    "body",
    [
        LARGE.replace(b'"x19"', b'"y19"'),
        LARGE[:-1] + b" }",  # a byte more at the end
        LARGE + b" ",
        LARGE[:-2] + b"]",  # the end cut short: not JSON
        LARGE.replace(b'"data": [', b'"data":[', 1),
    ],
    ids=["name", "spacing at the end", "a byte after", "cut short", "spacing"],
)
def test_a_large_request_in_another_layout_goes_the_whole_way(body: bytes) -> None:
    layouts, numbers = _large_layouts(LARGE)

    assert layouts.decode(body, numbers) is None
    _assert_decodes_as_without_layouts(body, layouts, numbers)


# --- one float tensor (MLServer's own body: a 2-D tensor, one array a row) ------------------


def _tensor(data: Any, shape: list[int], *, datatype: str = "FP64", **fields: Any) -> bytes:
    """A request of one tensor ``input-0`` (json.dumps' spacing, as MLServer's and kserve's
    clients send it); ``fields`` go into the input before its data (its ``parameters``)."""
    tensor = {"name": "input-0", "shape": shape, "datatype": datatype, **fields, "data": data}
    return json.dumps({"inputs": [tensor]}).encode()


def _with_data(body: bytes, data: bytes) -> bytes:
    """``body`` (of one tensor, its data last in the input) with its data array replaced."""
    head, _, rest = body.partition(b'"data": ')
    return head + b'"data": ' + data + rest[rest.index(b"]}") + 1 :]


NESTED = _tensor([[0.5, -1.25, 3.0, 7e-3]], [1, 4])
FLAT = _tensor([0.5, -1.25, 3.0, 7e-3], [1, 4])
ROWS_3 = _tensor([[1, 2], [3, 4], [5, 6]], [3, 2])


@pytest.mark.parametrize(
    ("first", "data"),
    [
        (NESTED, b"[[1.5, -2.75, 0, 123456789]]"),
        (NESTED, b"[[-0.0, 1e300, -2.5E-7, 18446744073709551615]]"),
        (NESTED, b"[ [ 0.125 ,1e-320,-9007199254740993,6.02214076e23 ] ]"),
        (NESTED, b"[1, 2, 3, 4]"),  # flat where the first was nested: as the whole way takes it
        (FLAT, b"[9, 8.5, -7, 6e2]"),
        (FLAT, b"[[9, 8.5, -7, 6e2]]"),
        (ROWS_3, b"[[0.5, 1], [2, 3.25], [-4, 5e-1]]"),
        (ROWS_3, b"[7, 8, 9, 10, 11, 12]"),
        (ROWS_3, b"[[7, 8, 9], [10], [11, 12]]"),  # rows of other lengths: joined, both ways
        (NESTED, b"[[1, 2], [3, 4]]"),
        (NESTED, b"[[1, 2, 3, 123456789012345678901234567890]]"),  # orjson: a float, both ways
        (_tensor([0.5, 1.5, 2.5], [3]), b"[3, 2, 1]"),
        (_tensor([[0.5, 1.5]], [1, 2], datatype="FP32"), b"[[0.1, 3]]"),
        (_tensor([[0.5, 1.5]], [1, 2], parameters={"content_type": "np"}), b"[[2, 4]]"),
        (_tensor([[0.5] * 80], [1, 80]), b"[[" + b", ".join([b"1.25"] * 80) + b"]]"),
    ],
    ids=[
        "other numbers",
        "signs, exponents, 64 bits",
        "spacing, subnormals, integers",
        "flat after nested",
        "flat",
        "nested after flat",
        "three rows",
        "three rows flat",
        "three rows of other lengths",
        "two rows for one",
        "past 64 bits",
        "1-D",
        "FP32",
        "input parameters",
        "64 values or more (numpy's bulk read)",
    ],
)
def test_a_tensor_request_in_a_layout_gives_what_decoding_it_whole_gives(
    first: bytes, data: bytes
) -> None:
    layouts = _layouts(first)
    body = _with_data(first, data)

    taken = layouts.decode(body)

    assert taken is not None  # read from the layout
    assert_same_request(taken, v2.decode_request(body))
    assert_same_request(v2.decode_request(body, layouts=layouts), v2.decode_request(body))


def test_a_tensor_request_with_its_own_leading_id_shares_a_layout() -> None:
    first = NESTED.replace(b"{", b'{"id": "6b1f0c1e-4c5e", ', 1)
    body = _with_data(first, b"[[4, 3, 2, 1]]").replace(b"6b1f0c1e", b"00000000")

    _assert_read_with_its_own_id(_layouts(first), body)


@pytest.mark.parametrize(
    "data",
    [
        b"[[1, 2, 3, null]]",
        b"[[1, 2, 3, true]]",
        b'[[1, 2, 3, "4"]]',
        b"[[1, 2, 3, NaN]]",
        b"[[1, 2, 3, 1e400]]",
        b"[[1, 2, 3, [4]]]",
        b"[[[1, 2, 3, 4]]]",
        b"[[1, 2, 3]]",
        b"[[1, 2, 3, 4, 5]]",
        b"[[1, 2, 3, 4], [5, 6, 7, 8]]",
        b"[1, 2, 3]",
        b"[1, [2], 3, 4]",
        b"[[1, 2, 3], 4]",
        b'[[1, 2], "34"]',
        b"[[1, 2, 3, 4]], [[5]]",
        b"[[1, 2, 3, 4]] ]",
        b"[]",
        b"{}",
        b"7",
        b"",
    ],
    ids=[
        "null",
        "true",
        "string",
        "NaN",
        "1e400",
        "a value an array",
        "nested deeper",
        "a row short",
        "a row long",
        "a row more",
        "flat, one short",
        "flat, one nested",
        "a row, then a value",
        "a row, then a string",
        "two values",
        "a bracket more",
        "empty",
        "an object",
        "a number",
        "nothing",
    ],
)
def test_a_tensor_request_the_layout_cannot_read_goes_the_whole_way(data: bytes) -> None:
    layouts = _layouts(NESTED)
    body = _with_data(NESTED, data)

    assert layouts.decode(body) is None
    _assert_decodes_as_without_layouts(body, layouts)


def test_a_tensor_beyond_fp32_goes_the_whole_way_which_names_it() -> None:
    first = _tensor([[0.5, 1.5]], [1, 2], datatype="FP32")
    layouts = _layouts(first)
    body = _with_data(first, b"[[1e39, 1]]")

    assert layouts.decode(body) is None
    _assert_decodes_as_without_layouts(body, layouts)
    with pytest.raises(InvalidRequestError, match="out of range for FP32"):
        v2.decode_request(body, layouts=layouts)


@pytest.mark.parametrize("kind", ["small", "large", "one tensor"])
def test_requests_changed_at_random_decode_as_the_whole_way_decodes_them(kind: str) -> None:
    """300 bodies, each one byte of a learned request replaced by a byte JSON gives meaning
    to (a seeded draw): whatever the layout takes, it takes as the whole way does; all else
    it leaves to the whole way."""
    large = kind == "large"
    first = {"small": FIRST, "large": LARGE, "one tensor": NESTED}[kind]
    layouts, numbers = _large_layouts(first) if large else (_layouts(first), None)
    draw = random.Random(15)
    significant = b'[]{},:" -.0123456789eE+nulltruefalse\\'
    taken = 0
    for _ in range(300):
        at = draw.randrange(len(first))
        body = first[:at] + bytes([draw.choice(significant)]) + first[at + 1 :]
        taken += layouts.decode(body, numbers) is not None
        _assert_decodes_as_without_layouts(body, layouts, numbers)
    # a change that leaves a number a number is read from the layout (FIRST and NESTED: four)
    assert taken >= (30 if large else 5)


def test_only_requests_read_from_plain_json_numbers_say_their_values_are_finite() -> None:
    """``InferRequest.finite`` lets the numeric path skip its NaN and infinity check: only
    the readers of plain JSON numbers (a layout, simdjson) may set it."""
    layouts = _layouts(FIRST, matched=True)
    assert v2.decode_request(FIRST, layouts=layouts).finite  # its layout's numbers
    with_null = _with_numbers(FIRST, b"0.5", b"null", b"3.0", b"7e-3")
    whole = v2.decode_request(with_null, layouts=layouts)  # null: the whole way, as NaN
    assert not whole.finite
    assert math.isnan(whole.inputs[1].data[0])
    tensors = _layouts(NESTED)
    assert v2.decode_request(NESTED, layouts=tensors).finite
    assert v2.decode_request(LARGE, numbers=JsonNumbers()).finite  # simdjson
    assert not v2.decode_request(LARGE).finite  # orjson, the whole way
    blob = struct.pack("<2d", math.inf, 1.0)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [2],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": len(blob)},
                }
            ]
        }
    ).encode()
    binary = v2.decode_request(header + blob, header_length=len(header))
    assert not binary.finite
    assert math.isinf(binary.inputs[0].data[0])
