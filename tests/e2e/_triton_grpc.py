"""Runs calls of the unmodified ``tritonclient.grpc`` client against a server; the calls come
as JSON on stdin, the answers go out as JSON on stdout.

A process of its own: tritonclient's and kserve's generated protobuf modules both claim
package ``inference`` in protobuf's default pool, so the two clients cannot be imported into
one process, and the test process has kserve.

Input: ``{"url": "127.0.0.1:PORT", "calls": [{"call": NAME, ...}, ...]}``, each call one of
``live``, ``ready``, ``model_ready`` (``model``, ``version``), ``server_metadata``,
``model_metadata`` (``model``, ``version``) and ``infer`` (``model``, ``version``, ``inputs``:
``[{"name", "datatype", "data"}]`` with ``data`` a nested list, ``outputs``, ``request_id``),
each with optional ``headers``. Output: one ``{"ok": answer}`` or
``{"status": code, "message": text}`` per call.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

_DTYPES = {"FP64": np.float64, "FP32": np.float32, "INT64": np.int64, "BOOL": np.bool_}


def _tensor(spec: dict[str, Any]) -> triton.InferInput:
    datatype = spec["datatype"]
    values = np.array(spec["data"], dtype=_DTYPES.get(datatype, np.object_))
    tensor = triton.InferInput(spec["name"], list(values.shape), datatype)
    tensor.set_data_from_numpy(values)
    return tensor


def _run(client: triton.InferenceServerClient, call: dict[str, Any]) -> Any:
    name, headers = call["call"], call.get("headers")
    version = call.get("version", "")
    if name == "live":
        return client.is_server_live(headers=headers)
    if name == "ready":
        return client.is_server_ready(headers=headers)
    if name == "model_ready":
        return client.is_model_ready(call["model"], version, headers=headers)
    if name == "server_metadata":
        return client.get_server_metadata(headers=headers, as_json=True)
    if name == "model_metadata":
        return client.get_model_metadata(call["model"], version, headers=headers, as_json=True)
    if name == "infer":
        outputs = [triton.InferRequestedOutput(o) for o in call.get("outputs", [])] or None
        result = client.infer(
            call["model"],
            [_tensor(spec) for spec in call["inputs"]],
            model_version=version,
            outputs=outputs,
            request_id=call.get("request_id", ""),
            headers=headers,
        )
        response = result.get_response(as_json=True)
        values = {}
        for output in response["outputs"]:
            array = result.as_numpy(output["name"])
            values[output["name"]] = (
                [v.decode() if isinstance(v, bytes) else v for v in array.tolist()]
                if array.dtype == np.object_
                else array.tolist()
            )
        return {"response": response, "outputs": values}
    raise ValueError(f"unknown call {name!r}")


def main() -> None:
    request = json.load(sys.stdin)
    client = triton.InferenceServerClient(request["url"])
    answers = []
    try:
        for call in request["calls"]:
            try:
                answers.append({"ok": _run(client, call)})
            except InferenceServerException as exc:
                answers.append({"status": str(exc.status()), "message": exc.message()})
    finally:
        client.close()
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
