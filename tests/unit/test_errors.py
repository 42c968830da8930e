"""The error contract: every error carries a status, a unique code and an exit code, and
renders to the one JSON shape."""

import inspect
import json
from http import HTTPStatus

import dockyard.errors as errors
from dockyard.errors import DockyardError


def _error_classes() -> list[type[DockyardError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, DockyardError)
    ]


def test_every_error_is_exported_and_documented_in_the_tree() -> None:
    doc = errors.__doc__ or ""
    for cls in _error_classes():
        assert cls.__name__ in errors.__all__
        assert cls.__name__ in doc, f"{cls.__name__} missing from the tree in errors.py"


def test_codes_are_unique_and_statuses_are_http() -> None:
    codes = [cls.code for cls in _error_classes()]
    assert len(codes) == len(set(codes))
    for cls in _error_classes():
        assert isinstance(cls.status, HTTPStatus)
        assert cls.exit_code > 0


def test_one_json_shape() -> None:
    exc = errors.SchemaValidationError("2 problems", hint="fix them", details={"problems": []})
    body = json.loads(json.dumps(exc.to_dict()))
    assert body == {
        "error": "2 problems. fix them",
        "code": "schema_validation",
        "details": {"problems": []},
    }


def test_user_mistakes_are_4xx() -> None:
    for cls in _error_classes():
        if issubclass(
            cls, errors.InvalidRequestError | errors.NotFoundError | errors.ConflictError
        ):
            assert 400 <= cls.status < 500
