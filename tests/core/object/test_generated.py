"""Checked-in *_pb2 modules must be what protoc generates from the .proto files today."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ion.core.object import gencode

pytest.importorskip("grpc_tools", reason="grpcio-tools (test extra) generates the modules")

PKG = gencode.PROTO_PACKAGE


def test_checked_in_modules_are_up_to_date():
    """Regenerating from the .proto files reproduces every checked-in module byte for byte."""
    problems = gencode.check()
    assert not problems, "generated code is out of date:\n" + "\n".join(problems)


def test_generation_is_deterministic(tmp_path):
    """Two generations from the same schemas give identical files."""
    gencode.generate(gencode.repo_root(), tmp_path / "a")
    gencode.generate(gencode.repo_root(), tmp_path / "b")
    assert gencode.compare_trees(tmp_path / "a", tmp_path / "b") == []


def test_generated_imports_resolve_inside_the_package(tmp_path):
    """Generated modules import their siblings as ion.core.object.proto modules."""
    gencode.generate(gencode.repo_root(), tmp_path)
    text = (tmp_path / PKG / "events_pb2.py").read_text()
    assert "from ion.core.object.proto import ion_options_pb2" in text
    assert "\nimport ion_options_pb2" not in text


@pytest.fixture
def two_trees(tmp_path) -> tuple[Path, Path]:
    """A fresh generation and a copy of it standing in for the checked-in tree."""
    fresh, copy = tmp_path / "fresh", tmp_path / "copy"
    gencode.generate(gencode.repo_root(), fresh)
    shutil.copytree(fresh, copy)
    return fresh, copy


def test_compare_names_a_stale_module(two_trees):
    """A checked-in module that differs from a fresh generation is reported by name."""
    fresh, copy = two_trees
    stale = copy / PKG / "examples_pb2.py"
    stale.write_text(stale.read_text().replace("Person", "Persona"))
    assert gencode.compare_trees(fresh, copy) == [
        f"{PKG}/examples_pb2.py: stale, differs from its .proto; run scripts/gen_objects.py"
    ]


def test_compare_reports_stale_after_schema_change(tmp_path):
    """Editing a .proto without regenerating makes check() name that module."""
    root = tmp_path / "repo"
    shutil.copytree(gencode.repo_root() / PKG, root / PKG)
    proto = root / PKG / "examples.proto"
    proto.write_text(
        proto.read_text().replace("string email = 3;", "string email = 3;\n  string nick = 6;")
    )
    problems = gencode.check(root)
    assert [p.split(":")[0] for p in problems] == [
        f"{PKG}/examples_pb2.py",
        f"{PKG}/examples_pb2.pyi",
    ]


def test_compare_reports_missing_and_orphaned_modules(two_trees):
    """A module never checked in, or left over without a .proto, is reported."""
    fresh, copy = two_trees
    (copy / PKG / "core_pb2.py").unlink()
    (copy / PKG / "old_pb2.py").write_text("# left over\n")
    assert gencode.compare_trees(fresh, copy) == [
        f"{PKG}/core_pb2.py: missing; run scripts/gen_objects.py",
        f"{PKG}/old_pb2.py: no .proto generates it any more; delete it",
    ]


def test_compare_mentions_a_protoc_version_change(two_trees):
    """When the gencode version header differs, the report says which protoc made each."""
    fresh, copy = two_trees
    old = copy / PKG / "core_pb2.py"
    old.write_text(
        old.read_text().replace("# Protobuf Python Version: ", "# Protobuf Python Version: 0.", 1)
    )
    [problem] = gencode.compare_trees(fresh, copy)
    assert problem.startswith(f"{PKG}/core_pb2.py: stale")
    assert "checked in by protoc for 0." in problem
