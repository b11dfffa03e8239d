"""Reading YAML as plain data, and no more of it than a configuration needs.

PyYAML's safe loaders build only plain data; these also refuse aliases
(C{*name}: shared data is copied wherever it is merged or frozen, so a few
hundred bytes of nested aliases became gigabytes, and a recursive one never
ended), nesting deeper than L{MAX_DEPTH} and numbers Python will not convert,
each as a L{YAMLRefused} error at its line. Config, app and release files,
C{-a} and environment values, and ion-rpc's CONTENT are all read here.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

# Nesting deeper than this is refused where YAML is read: merging, copying and
# freezing configuration recurse, and no real file nests anywhere near so deep.
MAX_DEPTH = 100
TOO_DEEP = f"nested too deeply (more than {MAX_DEPTH} levels)"


class YAMLRefused(yaml.MarkedYAMLError):
    """YAML that parses but that ion will not load: an alias (C{*name}), nesting
    deeper than L{MAX_DEPTH}, a number Python will not convert, or too much of it.

    Aliases are refused because the data they share is copied wherever it is
    merged or frozen: a few hundred bytes of nested aliases became gigabytes,
    and a recursive one never ended.
    """

    def __init__(self, problem: str, mark: Any = None) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _SharedNode(yaml.YAMLError):
    """libyaml composed an alias: read the text again with the pure-Python
    parser, which refuses it at the alias, by name."""


def _check_tree(root: yaml.Node) -> None:
    """Refuse a node reached twice (an alias) or nested too deeply; level by level,
    without recursing (it runs on every document read, so it is kept lean)."""
    seen: set[yaml.Node] = set()
    level, depth = [root], 0
    while level:
        known = len(seen)
        seen.update(level)
        if len(seen) - known != len(level):
            raise _SharedNode("YAML aliases are not allowed")
        depth += 1
        below: list[yaml.Node] = []
        for node in level:
            if isinstance(node, yaml.ScalarNode):
                continue
            if depth > MAX_DEPTH:
                raise YAMLRefused(TOO_DEEP, node.start_mark)
            if isinstance(node, yaml.MappingNode):
                for pair in node.value:
                    below.extend(pair)
            else:
                below.extend(node.value)
        level = below


class _Strict:
    """What ion's YAML loaders add to PyYAML's safe ones: the refusals of L{YAMLRefused}."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        # The pure-Python composer: refuse an alias where it stands. (libyaml's
        # composer cannot be hooked; construct_document finds the nodes it shares.)
        if self.check_event(yaml.AliasEvent):  # type: ignore[attr-defined]
            event = self.peek_event()  # type: ignore[attr-defined]
            if event.anchor in self.anchors:  # type: ignore[attr-defined]
                # (An undefined one stays PyYAML's own error: "*.py" is no alias.)
                raise YAMLRefused(
                    f"YAML aliases (*{event.anchor}) are not allowed", event.start_mark
                )
        return super().compose_node(parent, index)  # type: ignore[misc]

    def construct_document(self, node: yaml.Node) -> Any:
        _check_tree(node)
        return super().construct_document(node)  # type: ignore[misc]

    # The pure-Python scanner: stop at the first level past the limit, at its
    # line, before the scanner's look-ahead (quadratic in the flow level: seconds
    # for a few thousand) or the composer's recursion gets there.
    def fetch_flow_collection_start(self, token_class: Any) -> None:
        if self.flow_level >= MAX_DEPTH:  # type: ignore[attr-defined]
            raise YAMLRefused(TOO_DEEP, self.get_mark())  # type: ignore[attr-defined]
        super().fetch_flow_collection_start(token_class)  # type: ignore[misc]

    def add_indent(self, column: int) -> bool:
        if len(self.indents) >= MAX_DEPTH and self.indent < column:  # type: ignore[attr-defined]
            raise YAMLRefused(TOO_DEEP, self.get_mark())  # type: ignore[attr-defined]
        return super().add_indent(column)  # type: ignore[misc]


def _construct_checked(loader: Any, node: yaml.ScalarNode) -> Any:
    """An int or a timestamp as PyYAML reads it; one Python cannot convert is an
    error at its line rather than a bare ValueError."""
    try:
        return yaml.SafeLoader.yaml_constructors[node.tag](loader, node)
    except ValueError as exc:
        if "integer string conversion" in str(exc):
            limit = sys.get_int_max_str_digits()
            raise YAMLRefused(
                f"number too long (more than {limit} digits)", node.start_mark
            ) from None
        kind = node.tag.rsplit(":", 1)[-1]
        problem = f"{node.value!r} is not a valid {kind}: {exc}"
        raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None


class StrictLoader(_Strict, yaml.SafeLoader):
    """PyYAML's pure-Python safe loader with ion's refusals (L{YAMLRefused})."""


StrictCLoader: Any = None
if getattr(yaml, "__with_libyaml__", False):

    class StrictCLoader(_Strict, yaml.CSafeLoader):  # type: ignore[no-redef]
        """L{StrictLoader} on libyaml's parser, several times faster."""


for _loader in (StrictLoader, StrictCLoader):
    if _loader is not None:
        _loader.add_constructor("tag:yaml.org,2002:int", _construct_checked)
        _loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_checked)


def load_yaml(text: str, loader: Any = StrictLoader, fast: Any = StrictCLoader) -> Any:
    """The YAML value in C{text}, never anything but plain data.

    Read with C{fast} (on libyaml, when PyYAML has it; config and app files are
    read at every boot); text it rejects is read again with C{loader}, so what is
    accepted and the errors reported stay those of the pure-Python parser.
    Both must derive from L{StrictLoader} or L{StrictCLoader}.

    @raise yaml.YAMLError: the text is malformed; L{YAMLRefused} for what ion refuses.
    """
    try:
        if fast is not None:
            try:
                return yaml.load(text, Loader=fast)  # noqa: S506 - a SafeLoader
            except YAMLRefused:
                raise
            except yaml.YAMLError:
                pass  # (past libyaml's own nesting limit too: loader stops sooner)
        return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader
    except RecursionError:
        raise YAMLRefused(TOO_DEEP) from None
    except MemoryError:
        raise YAMLRefused("too large to load") from None
    except ValueError as exc:
        raise YAMLRefused(f"unreadable value: {exc}") from None
