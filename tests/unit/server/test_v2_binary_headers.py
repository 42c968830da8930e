"""Binary requests whose JSON header was decoded lately (``BinaryHeaders``): decoded from
their binary part alone, to exactly what the whole decoding gives, with the binary part's
own checks made again; anything else decoded (or refused) the whole way as before."""

from __future__ import annotations

from typing import Any

import kserve
import numpy as np
import orjson
import pytest
import tritonclient.http as triton

from _v2 import assert_same_request
from dockyard.errors import InvalidRequestError
from dockyard.server.protocols import v2
from dockyard.server.protocols.v2.binary import HEADER_BYTES

Inputs = list[tuple[str, np.ndarray[Any, Any], str]]


def _triton(inputs: Inputs, **kwargs: Any) -> tuple[bytes, int]:
    """A binary body as tritonclient encodes it."""
    tensors = []
    for name, array, datatype in inputs:
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=True)
        tensors.append(tensor)
    body, length = triton.InferenceServerClient.generate_request_body(tensors, **kwargs)
    return body, length


def _columns(values: np.ndarray[Any, Any], datatype: str = "FP64") -> Inputs:
    return [(f"x{i}", values[:, i].copy(), datatype) for i in range(values.shape[1])]


def _requests() -> dict[str, tuple[Inputs, Inputs, dict[str, Any]]]:
    """Pairs of requests with one header and other values: (first, second, encoder args)."""
    rng = np.random.default_rng(7)
    first, second = rng.normal(size=(2, 3, 5))
    return {
        "one-row columns": (_columns(first[:1]), _columns(second[:1]), {}),
        "columns FP32": (
            _columns(first.astype(np.float32), "FP32"),
            _columns(second.astype(np.float32), "FP32"),
            {},
        ),
        "2-D tensor": ([("input-0", first, "FP64")], [("input-0", second, "FP64")], {}),
        "mixed datatypes": (
            [
                ("a", np.array([1.5, 2.5]), "FP64"),
                ("b", np.array([3, 4], dtype=np.int64), "INT64"),
                ("c", np.array([True, False]), "BOOL"),
                ("d", np.array([b"x", b"yz"], dtype=object), "BYTES"),
            ],
            [
                ("a", np.array([-1.0, np.nan]), "FP64"),
                ("b", np.array([7, -8], dtype=np.int64), "INT64"),
                ("c", np.array([False, True]), "BOOL"),
                ("d", np.array([b"q", b"rs"], dtype=object), "BYTES"),
            ],
            {},
        ),
        "id, parameters, outputs": (
            _columns(first[:2]),
            _columns(second[:2]),
            {
                "request_id": "r-1",
                "parameters": {"tag": "t"},
                "outputs": [triton.InferRequestedOutput("predict", binary_data=True)],
            },
        ),
    }


@pytest.mark.parametrize("case", list(_requests()))
def test_a_header_decoded_before_gives_what_decoding_it_whole_gives(case: str) -> None:
    first, second, kwargs = _requests()[case]
    headers = v2.BinaryHeaders()
    body, length = _triton(first, **kwargs)
    assert_same_request(
        v2.decode_request(body, header_length=length, headers=headers),
        v2.decode_request(body, header_length=length),
    )
    again, again_length = _triton(second, **kwargs)
    assert again[:again_length] == body[:length]  # one header, other values
    remembered = headers.decode(again[:again_length], memoryview(again)[again_length:])
    assert remembered is not None
    assert_same_request(remembered, v2.decode_request(again, header_length=again_length))
    assert_same_request(
        v2.decode_request(again, header_length=again_length, headers=headers),
        v2.decode_request(again, header_length=again_length),
    )


def test_the_binary_parts_checks_are_made_on_every_request() -> None:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "c",
                    "shape": [2],
                    "datatype": "BOOL",
                    "parameters": {"binary_data_size": 2},
                },
                {
                    "name": "s",
                    "shape": [1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": 5},
                },
            ]
        }
    )
    headers = v2.BinaryHeaders()
    v2.decode_request(
        header + b"\x01\x00" + b"\x01\x00\x00\x00a", header_length=len(header), headers=headers
    )
    assert len(headers) == 1

    for binary, expected in [
        (b"\x01\x02" + b"\x01\x00\x00\x00a", "byte other than 0 or 1"),
        (b"\x01\x00" + b"\x02\x00\x00\x00a", "element 0 claims 2 bytes"),
    ]:
        with pytest.raises(InvalidRequestError, match=expected):
            v2.decode_request(header + binary, header_length=len(header), headers=headers)


@pytest.mark.parametrize(("extra", "expected"), [(8, "8 bytes after"), (-8, "past the end")])
def test_a_binary_part_of_another_length_is_refused_as_before(extra: int, expected: str) -> None:
    body, length = _triton(_columns(np.ones((1, 3))))
    headers = v2.BinaryHeaders()
    v2.decode_request(body, header_length=length, headers=headers)
    odd = body + b"\0" * extra if extra > 0 else body[:extra]

    with pytest.raises(InvalidRequestError, match=expected):
        v2.decode_request(odd, header_length=length, headers=headers)
    with pytest.raises(InvalidRequestError, match=expected):
        v2.decode_request(odd, header_length=length)


def test_requests_never_share_their_values() -> None:
    headers = v2.BinaryHeaders()
    body, length = _triton(_columns(np.zeros((1, 3))))
    first = v2.decode_request(body, header_length=length, headers=headers)
    other, _ = _triton(_columns(np.full((1, 3), 2.0)))
    second = v2.decode_request(other, header_length=length, headers=headers)

    assert v2.tabular_input(first, ["x0", "x1", "x2"]).tolist() == [[0.0, 0.0, 0.0]]  # type: ignore[union-attr]
    assert v2.tabular_input(second, ["x0", "x1", "x2"]).tolist() == [[2.0, 2.0, 2.0]]  # type: ignore[union-attr]
    assert not np.shares_memory(first.inputs.values, second.inputs.values)  # type: ignore[union-attr]


def test_only_headers_of_binary_inputs_within_the_bound_are_remembered() -> None:
    headers = v2.BinaryHeaders()
    json_input = orjson.dumps(
        {
            "inputs": [
                {"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]},
                {
                    "name": "b",
                    "shape": [1],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 8},
                },
            ]
        }
    )
    v2.decode_request(json_input + bytes(8), header_length=len(json_input), headers=headers)
    wide = _columns(np.ones((1, 400)))  # ~200 bytes per column of tritonclient's header
    body, length = _triton(wide)
    assert length > HEADER_BYTES
    request = v2.decode_request(body, header_length=length, headers=headers)
    assert isinstance(request.inputs, v2.ColumnBlock)
    with pytest.raises(InvalidRequestError):
        v2.decode_request(b'{"inputs": 1}', header_length=13, headers=headers)

    assert len(headers) == 0


def test_a_full_memory_starts_over_so_many_headers_stay_bounded() -> None:
    headers = v2.BinaryHeaders(size=4)
    for count in range(1, 11):
        body, length = _triton(_columns(np.ones((1, count))))
        v2.decode_request(body, header_length=length, headers=headers)
        assert 1 <= len(headers) <= 4


def _kserve(values: np.ndarray[Any, Any]) -> tuple[bytes, int]:
    """A binary body as kserve's client encodes it: a fresh uuid4 ``id`` first, every time."""
    inputs = []
    for i in range(values.shape[1]):
        tensor = kserve.InferInput(f"x{i}", [values.shape[0]], "FP64")
        tensor.set_data_from_numpy(values[:, i].copy(), binary_data=True)
        inputs.append(tensor)
    body, length = kserve.InferRequest(model_name="lr", infer_inputs=inputs).to_rest()
    assert isinstance(body, bytes)
    assert length is not None
    return body, length


def test_a_header_that_differs_in_its_leading_id_alone_is_remembered_as_one() -> None:
    headers = v2.BinaryHeaders()
    first, length = _kserve(np.ones((1, 3)))
    v2.decode_request(first, header_length=length, headers=headers)
    again, again_length = _kserve(np.full((1, 3), 2.5))
    assert again[:again_length] != first[:length]  # another id

    remembered = headers.decode(again[:again_length], memoryview(again)[again_length:])

    assert remembered is not None
    whole = v2.decode_request(again, header_length=again_length)
    assert whole.id is not None
    assert_same_request(remembered, whole)  # its own id, its own values
    assert len(headers) == 1


@pytest.mark.parametrize(
    ("id_member", "remembered"),
    [
        (b'"id":"a","id":"b",', False),  # a duplicate key: the parser keeps the last
        (b'"id":"a\\u0062",', True),  # an escape: remembered as it is, by its bytes alone
        (b'"id":"\xff",', False),  # not UTF-8: refused whole, as before
        (b'"id":"a\x01",', False),  # a control character: not JSON
        (b'"id":"",', True),
    ],
    ids=["duplicate", "escape", "not UTF-8", "control character", "empty"],
)
def test_a_leading_id_the_split_cannot_take_is_decoded_the_whole_way(
    id_member: bytes, remembered: bool
) -> None:
    header = (
        b"{"
        + id_member
        + b'"inputs":['
        + b",".join(
            b'{"name":"x%d","shape":[1],"datatype":"FP64","parameters":{"binary_data_size":8}}' % i
            for i in range(2)
        )
        + b"]}"
    )
    body = header + np.array([1.0, 2.0]).tobytes()
    headers = v2.BinaryHeaders()
    try:
        expected: Any = v2.decode_request(body, header_length=len(header))
    except InvalidRequestError as refused:
        expected = refused.to_dict()
    for _ in range(2):  # the second time, from the remembered header if it was remembered
        try:
            got: Any = v2.decode_request(body, header_length=len(header), headers=headers)
        except InvalidRequestError as refused:
            got = refused.to_dict()
        if isinstance(expected, dict):
            assert got == expected
        else:
            assert_same_request(got, expected)
    assert (len(headers) == 1) is remembered
