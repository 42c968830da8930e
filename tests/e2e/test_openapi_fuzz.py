"""Fuzzing a real server: schemathesis over its own OpenAPI schema, and Hypothesis over the
Open Inference Protocol bodies the schema cannot describe.

The contract held: no request, however malformed, gets a 5xx, and every 4xx carries the one
error shape ``{"error", "code", "details"}``. Runs are bounded and derandomized, so a failure
reproduces; each failure is reported with the request that shows it.
"""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok

if TYPE_CHECKING:
    from conftest import ServerProcess, Zoo

ENDPOINTS = {"cancer": "cancer@1.0.0", "mixed": "mixed@1.0.0"}
COLUMNS = {
    "cancer": ["mean radius", "mean texture", "worst area"],  # a few of its 30
    "mixed": ["color", "size", "member", "count"],
}
DATATYPES = ["BOOL", "UINT8", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES", "BF16"]


def bounded(max_examples: int) -> settings:
    """Small, reproducible runs: the same examples every time, no example database."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


@pytest.fixture(scope="module")
def server(zoo: Zoo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = zoo.serve(tmp_path_factory.mktemp("fuzz") / "home", ENDPOINTS)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def error_shape_problem(response: Any) -> str | None:
    """Why a 4xx response is not our error shape, or ``None`` when it is (or is not a 4xx)."""
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        return f"{response.status_code} with a body that is not JSON: {response.content[:200]!r}"
    if not isinstance(body, dict) or not {"error", "code", "details"} <= body.keys():
        return f"{response.status_code} without the error shape: {response.content[:200]!r}"
    if not isinstance(body["error"], str) or not isinstance(body["code"], str):
        return f"{response.status_code} with a malformed error: {response.content[:200]!r}"
    return None


def assert_no_crash_logged(server: ServerProcess) -> None:
    """A request that kills its connection gets no status at all: the log is where it shows."""
    log = server.log.read_text()
    assert "Traceback" not in log, log[log.index("Traceback") - 300 :][:3000]


def our_error_shape(ctx: CheckContext, response: schemathesis.Response, case: Case[Any]) -> None:
    """A schemathesis check: every 4xx has ``{"error", "code", "details"}``."""
    problem = error_shape_problem(response)
    assert problem is None, problem


def test_every_operation_survives_the_fuzzer(server: ServerProcess) -> None:
    """Every operation of the schema, with valid and (where it has a body or a query) invalid
    input, with random endpoint names and with the deployed ones."""
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    failures: list[str] = []
    covered: list[str] = []
    with requests.Session() as session:

        def check(case: Case[Any]) -> None:
            response = case.call(base_url=server.url, session=session, timeout=30)
            try:
                case.validate_response(response, checks=[not_a_server_error, our_error_shape])
            except FailureGroup as exc:
                failures.append(str(exc))

        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result  # the schema itself must be valid
            operation = result.ok()
            variants: list[tuple[GenerationMode, dict[str, Any] | None, int]] = [
                (GenerationMode.POSITIVE, None, 15)
            ]
            names = {parameter.name for parameter in operation.path_parameters}
            if "name" in names and operation.method.upper() != "PUT":  # never redeploy
                variants += [(GenerationMode.POSITIVE, {"name": name}, 10) for name in ENDPOINTS]
            if operation.body or operation.query:
                variants.append((GenerationMode.NEGATIVE, None, 25))
            for mode, pinned, examples in variants:
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=pinned)
                bounded(examples)(given(case=strategy)(check))()
            covered.append(operation.label)

    assert len(covered) >= 21, covered  # every route test_auth.py knows, at least
    assert not failures, f"{len(failures)} failures; the first:\n{failures[0]}"
    assert_no_crash_logged(server)


# --- the v2 inference bodies, which the schema leaves open ---------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5), max_leaves=24)
parameters = st.dictionaries(st.sampled_from(["binary_data", "binary_data_output", "x"]), values)


@st.composite
def tensor(draw: st.DrawFn, names: list[str]) -> dict[str, Any]:
    """An input tensor, often nearly right: a known name, datatype and a consistent shape."""
    rows = draw(st.integers(0, 3))
    width = draw(st.sampled_from([1, len(names), 30]))
    item: dict[str, Any] = {
        "name": draw(st.sampled_from([*names, "input-0"]) | st.text(max_size=4)),
        "datatype": draw(st.sampled_from(DATATYPES) | st.text(max_size=5)),
        "shape": draw(st.sampled_from([[rows], [rows, width]]) | st.just([-1]) | values),
    }
    count = rows * (width if item["shape"] == [rows, width] else 1)
    element = {
        "BOOL": st.booleans(),
        "BYTES": st.text(max_size=6),
    }.get(item["datatype"], st.floats(-1e6, 1e6) | st.integers(-(2**40), 2**40))
    item["data"] = draw(st.lists(element, min_size=count, max_size=count) | values)
    if draw(st.booleans()):
        item["parameters"] = draw(parameters)
    return item


@st.composite
def v2_request(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    endpoint = draw(st.sampled_from(sorted(ENDPOINTS)))
    body: dict[str, Any] = {
        "inputs": draw(st.lists(tensor(COLUMNS[endpoint]), max_size=4) | values)
    }
    if draw(st.booleans()):
        outputs = st.fixed_dictionaries(
            {"name": st.sampled_from(["predict", "predict_proba", "logits"])},
            optional={"parameters": parameters},
        )
        body["outputs"] = draw(st.lists(outputs, max_size=3) | values)
    if draw(st.booleans()):
        body["id"] = draw(st.text(max_size=8) | st.integers())
    if draw(st.booleans()):
        body["parameters"] = draw(parameters)
    return endpoint, body


MIXED_COLUMNS = {
    "color": ("BYTES", st.sampled_from(["red", "green", "blue", "", "purple"]) | st.text()),
    "size": ("FP64", st.none() | st.floats(allow_nan=False, allow_infinity=False)),
    "member": ("BOOL", st.booleans()),
    "count": ("INT64", st.integers(-(2**63), 2**63 - 1)),
}


@st.composite
def plausible_request(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A well-formed request with odd values: huge floats, nulls, unseen and empty strings,
    extreme integers; either layout; any choice of outputs and binary flags."""
    rows = draw(st.integers(1, 4))
    if draw(st.booleans()):
        endpoint = "cancer"
        number = st.floats(allow_nan=False, allow_infinity=False)
        data = draw(st.lists(number, min_size=rows * 30, max_size=rows * 30))
        inputs = [{"name": "input-0", "datatype": "FP64", "shape": [rows, 30], "data": data}]
    else:
        endpoint = "mixed"
        inputs = [
            {
                "name": name,
                "datatype": datatype,
                "shape": [rows],
                "data": draw(st.lists(element, min_size=rows, max_size=rows)),
            }
            for name, (datatype, element) in MIXED_COLUMNS.items()
        ]
    body: dict[str, Any] = {"inputs": inputs}
    wanted = draw(st.lists(st.sampled_from(["predict", "predict_proba"]), unique=True))
    if wanted:
        flags = st.fixed_dictionaries({}, optional={"binary_data": st.booleans()})
        body["outputs"] = [{"name": name, "parameters": draw(flags)} for name in wanted]
    if draw(st.booleans()):
        body["parameters"] = {"binary_data_output": draw(st.booleans())}
    return endpoint, body


def _encoded(body: bytes, encoding: str) -> bytes:
    compress: dict[str, Callable[[bytes], bytes]] = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "identity": lambda raw: raw,
    }
    return compress[encoding](body)


def test_v2_json_bodies_never_5xx(server: ServerProcess) -> None:
    failures: list[str] = []

    with httpx.Client(base_url=server.url, timeout=30) as client:

        @bounded(250)
        @given(
            request=plausible_request() | v2_request(),
            encoding=st.sampled_from(["identity", "gzip", "deflate"]),
        )
        def run(request: tuple[str, dict[str, Any]], encoding: str) -> None:
            endpoint, body = request
            raw = json.dumps(body).encode()
            response = client.post(
                f"/v2/models/{endpoint}/infer",
                content=_encoded(raw, encoding),
                headers={"content-type": "application/json", "content-encoding": encoding},
            )
            problem = (
                f"{response.status_code}: {response.text[:300]}"
                if response.status_code >= 500
                else error_shape_problem(response)
            )
            if problem is not None:
                failures.append(f"{problem}\n  POST /v2/models/{endpoint}/infer {raw[:400]!r}")

        run()
    assert not failures, f"{len(failures)} failures; the first:\n{failures[0]}"
    assert_no_crash_logged(server)


def test_v2_binary_bodies_never_5xx(server: ServerProcess) -> None:
    """The binary tensor extension: JSON header, declared sizes and raw bytes that may or may
    not agree with each other."""
    failures: list[str] = []
    element = st.sampled_from(DATATYPES)

    @st.composite
    def binary_request(draw: st.DrawFn) -> tuple[str, bytes, str]:
        endpoint = draw(st.sampled_from(sorted(ENDPOINTS)))
        names = COLUMNS[endpoint]
        inputs, blobs = [], []
        for _ in range(draw(st.integers(1, 4))):
            datatype = draw(element)
            rows = draw(st.integers(0, 3))
            shape = draw(st.sampled_from([[rows], [rows, len(names)], [rows, 30]]))
            blob = draw(st.binary(max_size=64))
            if datatype == "BYTES" and draw(st.booleans()):  # well-formed length prefixes
                texts = draw(st.lists(st.text(max_size=5), min_size=rows, max_size=rows))
                blob = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
            size = draw(st.just(len(blob)) | st.integers(-1, 100))
            inputs.append(
                {
                    "name": draw(st.sampled_from([*names, "input-0"])),
                    "datatype": datatype,
                    "shape": shape,
                    "parameters": {"binary_data_size": size},
                }
            )
            blobs.append(blob)
        header = json.dumps({"inputs": inputs}).encode()
        length = draw(st.just(len(header)) | st.integers(-5, len(header) + 80))
        return endpoint, header + b"".join(blobs), str(length)

    with httpx.Client(base_url=server.url, timeout=30) as client:

        @bounded(200)
        @given(request=binary_request())
        def run(request: tuple[str, bytes, str]) -> None:
            endpoint, body, length = request
            response = client.post(
                f"/v2/models/{endpoint}/infer",
                content=body,
                headers={
                    "content-type": "application/octet-stream",
                    "inference-header-content-length": length,
                },
            )
            problem = (
                f"{response.status_code}: {response.text[:300]}"
                if response.status_code >= 500
                else error_shape_problem(response)
            )
            if problem is not None:
                failures.append(f"{problem}\n  header length {length}, body {body[:400]!r}")

        run()
    assert not failures, f"{len(failures)} failures; the first:\n{failures[0]}"
    assert_no_crash_logged(server)


@pytest.mark.parametrize("request_id", ["line\nbreak", "tab\there", "caf\u00e9", "x" * 300])
def test_a_request_id_that_cannot_be_a_header_is_echoed_in_the_body_only(
    server: ServerProcess, request_id: str
) -> None:
    """Found by the fuzzer: the v2 "id" was echoed into x-request-id, and an id with a control
    character made the server drop the connection without an answer."""
    body = {
        "id": request_id,
        "inputs": [{"name": "size", "datatype": "FP64", "shape": [1], "data": [1.0]}],
    }
    response = httpx.post(f"{server.url}/v2/models/mixed/infer", json=body, timeout=30)
    assert response.status_code == 400, response.text  # three columns missing
    assert response.json()["request_id"] == request_id
    assert "x-request-id" not in response.headers
    body["inputs"] = [
        {"name": name, "datatype": datatype, "shape": [1], "data": [value]}
        for (name, (datatype, _)), value in zip(
            MIXED_COLUMNS.items(), ["red", 1.0, True, 3], strict=True
        )
    ]
    response = httpx.post(f"{server.url}/v2/models/mixed/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == request_id
    assert "x-request-id" not in response.headers
    assert_no_crash_logged(server)
