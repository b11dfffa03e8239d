"""Read the text of C{.app} and C{.rel} files into plain mappings, remembering lines.

Two formats are read, never with C{eval}:

  - YAML (preferred);
  - the original's Python-literal dict (C{{"type": "application", "mod": ("m", [..])}}),
    read with C{ast.literal_eval}, so old files load unchanged.

Format rule: if the first character that is not blank and not in a C{#}
comment line is C{"{"} and the whole text is a Python expression made only of
literals, it is the literal format. A Python expression containing a call
(C{dict(...)}, C{os.system(...)}) would need C{eval} and is refused, naming
the line. Anything else (including JSON and YAML flow mappings with bare
words) is read as YAML. Literals go first because YAML reads some Python
literals differently (C{None} is the string "None", escapes in C{'...'}).

YAML aliases (C{*name}) are refused, and in both formats nesting deeper than
L{MAX_DEPTH} levels and numbers Python will not convert (L{ion.core.safe_yaml.YAMLRefused}).

Every problem raises one L{AppFileError} naming the file, and the field and
line when known.
"""

from __future__ import annotations

import ast
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ion.core.exception import AppFileError
from ion.core.safe_yaml import (
    MAX_DEPTH,
    TOO_DEEP,
    StrictCLoader,
    StrictLoader,
    YAMLRefused,
    load_yaml,
)


class _LineDict(dict):
    """A dict that remembers each key's line and, for scalars, its source text."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}
        self.raw: dict[Any, str] = {}


class _Loader(StrictLoader):
    """ion's SafeLoader whose mappings are L{_LineDict}s; a duplicate key is an error."""


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> Any:
    data = _LineDict()
    yield data
    data.update(loader.construct_mapping(node))
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        if key in data.lines:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        data.lines[key] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.ScalarNode):
            data.raw[key] = value_node.value


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)

# libyaml's parser, when PyYAML has it, reads a file several times faster (files
# are read at every boot); load_yaml reads a file it rejects again with _Loader.
_FastLoader: Any = None
if StrictCLoader is not None:

    class _CLoader(StrictCLoader):
        """L{_Loader} on libyaml's parser."""

    _CLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
    _FastLoader = _CLoader


def _from_ast(path: str, node: ast.AST, source: str, depth: int = 1) -> Any:
    """The value of literal C{node}; a call or a name is refused with its line."""
    if isinstance(node, ast.Dict | ast.List | ast.Tuple) and depth > MAX_DEPTH:
        raise AppFileError(path, TOO_DEEP, line=node.lineno)
    if isinstance(node, ast.Dict):
        out = _LineDict()
        for key_node, value_node in zip(node.keys, node.values, strict=True):
            if key_node is None:
                raise AppFileError(path, "'**' is not allowed in a literal", line=node.lineno)
            key = _from_ast(path, key_node, source, depth + 1)
            if isinstance(key, (dict, list)):
                raise AppFileError(path, f"unhashable key {key!r}", line=key_node.lineno)
            out[key] = _from_ast(path, value_node, source, depth + 1)
            out.lines[key] = key_node.lineno
            segment = ast.get_source_segment(source, value_node)
            if segment is not None and isinstance(value_node, ast.Constant | ast.UnaryOp):
                out.raw[key] = segment
        return out
    if isinstance(node, ast.List | ast.Tuple):
        return [_from_ast(path, item, source, depth + 1) for item in node.elts]
    if isinstance(node, ast.Call):
        text = ast.get_source_segment(source, node) or "a call"
        raise AppFileError(
            path,
            f"{text} is a function call, which would need eval; use literals only",
            line=node.lineno,
        )
    try:
        return ast.literal_eval(node)
    except ValueError:
        text = ast.get_source_segment(source, node) or type(node).__name__
        raise AppFileError(path, f"{text} is not a literal", line=node.lineno) from None


def _looks_literal(text: str) -> bool:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped.startswith("{")
    return False


def _is_python_literal(tree: ast.Expression) -> bool:
    """True unless C{tree} holds a bare name (then it is YAML with bare words)."""
    return not any(isinstance(node, ast.Name) for node in ast.walk(tree))


def parse_text(text: str, path: str | os.PathLike[str] = "<string>") -> Mapping[str, Any]:
    """The top-level mapping of an app or release file's C{text} (see module docstring)."""
    where = str(path)
    try:
        data = _parse(text, where)
    except RecursionError:
        # Python's own parsers recurse (ast, literal_eval); whatever nests past
        # what they can take is nested far too deeply.
        raise AppFileError(where, TOO_DEEP) from None
    except MemoryError:
        raise AppFileError(where, "too large to load") from None
    except ValueError as exc:
        raise AppFileError(where, f"unreadable: {exc}") from None
    if not isinstance(data, Mapping):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise AppFileError(where, f"expected a mapping of fields, the file is {kind}")
    return data


def _parse(text: str, where: str) -> Any:
    """The value in C{text}, read as the literal format or as YAML."""
    literal_error: SyntaxError | None = None
    if _looks_literal(text):
        try:
            tree = ast.parse(text, filename=where, mode="eval")
        except SyntaxError as exc:
            _refuse_long_number(where, text, str(exc.msg))
            tree, literal_error = None, exc
        except ValueError as exc:  # Python < 3.12: null bytes, overlong numbers
            _refuse_long_number(where, text, str(exc))
            tree, literal_error = None, SyntaxError(str(exc))
        if tree is not None:
            calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
            if calls:
                _from_ast(where, min(calls, key=lambda n: (n.lineno, n.col_offset)), text)
            if _is_python_literal(tree):
                return _from_ast(where, tree.body, text)
    try:
        return load_yaml(text, _Loader, _FastLoader)
    except YAMLRefused as exc:
        # Well-formed YAML, so the file is YAML whatever it looks like.
        mark = exc.problem_mark
        raise AppFileError(where, exc.problem, line=mark.line + 1 if mark else None) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "unreadable"
        line = mark.line + 1 if mark is not None else None
        if literal_error is not None:
            # Starts like the literal format: its own error is the likelier one.
            raise AppFileError(
                where,
                f"malformed: not a Python literal ({literal_error.msg}) "
                f"nor YAML (line {line}: {problem})",
                line=literal_error.lineno,
            ) from None
        raise AppFileError(where, f"malformed YAML: {problem}", line=line) from None
    except yaml.YAMLError as exc:
        raise AppFileError(where, f"malformed YAML: {exc}") from None


def _refuse_long_number(where: str, text: str, message: str) -> None:
    """Python refused a literal integer as too long: say so, at its line."""
    limit = sys.get_int_max_str_digits()
    if "integer string conversion" not in message or not limit:
        return
    found = re.search(rf"\d{{{limit + 1},}}", text)
    line = text.count("\n", 0, found.start()) + 1 if found else None
    raise AppFileError(where, f"number too long (more than {limit} digits)", line=line)


def read_file(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """The top-level mapping of the app or release file at C{path}."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise AppFileError(path, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise AppFileError(path, "not UTF-8 text") from None
    return parse_text(text, path)


def field_line(path: str | os.PathLike[str] | None, key: str) -> int | None:
    """The line of top-level field C{key} in the file at C{path}, or None.

    Re-reads the file, so it is meant for error messages only; a file that no
    longer reads gives None rather than hiding the error being reported.
    """
    if path is None:
        return None
    try:
        return getattr(read_file(path), "lines", {}).get(key)
    except AppFileError:
        return None
