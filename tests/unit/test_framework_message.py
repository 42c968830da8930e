"""Framework exceptions become one line (``dockyard.runtimes._errors``)."""

from __future__ import annotations

from dockyard.runtimes._errors import MAX_CHARS, framework_message

XGBOOST = (
    '[17:11:59] /__w/xgboost/xgboost/src/common/json.cc:409: Expecting: ",", got: "EOF", '
    "around character position: 1082\n    0E0,0E0]\n    ~~~~~~~^\nStack trace:\n"
    "  [bt] (0) /venv/lib/python3.11/site-packages/xgboost/lib/libxgboost.so(+0x2c1a8c) "
    "[0x7f29868c1a8c]\n  [bt] (1) /venv/lib/libxgboost.so(+0x2cafdb) [0x7f29868cafdb]\n"
)


def test_stack_traces_log_prefixes_and_carets_are_dropped() -> None:
    message = framework_message(RuntimeError(XGBOOST))
    assert message == 'Expecting: ",", got: "EOF", around character position: 1082 0E0,0E0]'
    bare = framework_message(RuntimeError("Check failed: x\n  [bt] (0) /lib/x.so [0x7f]"))
    assert bare == "Check failed: x"


def test_multi_line_parser_errors_are_joined_and_bounded() -> None:
    yaml_like = "while parsing a block mapping\nexpected <block end>, but found ':'\n"
    assert framework_message(ValueError(yaml_like)) == (
        "while parsing a block mapping expected <block end>, but found ':'"
    )
    long = framework_message(ValueError("x" * 5000))
    assert len(long) == MAX_CHARS
    assert long.endswith("...")
    assert framework_message(KeyError()) == "KeyError"
