"""Generate the *_pb2 modules from the .proto schemas and detect stale ones.

Used by scripts/gen_objects.py and by the test that keeps checked-in gencode in
step with its schemas. Needs grpcio-tools (a build/test dependency only).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

PROTO_PACKAGE = Path("ion/core/object/proto")
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi")


def repo_root() -> Path:
    """The directory that holds the top-level C{ion} package."""
    return Path(__file__).resolve().parents[3]


def proto_files(root: Path) -> list[Path]:
    """The .proto schemas under C{root}, sorted, relative to C{root}."""
    return sorted(p.relative_to(root) for p in (root / PROTO_PACKAGE).glob("*.proto"))


def generate(root: Path, out_dir: Path) -> list[Path]:
    """Run protoc on every schema under C{root}; write modules under C{out_dir}.

    The include path is C{root} itself, so a schema's import path mirrors its
    Python package and generated imports read C{from ion.core.object.proto import x_pb2}.

    @return: the written files, relative to C{out_dir}, sorted.
    """
    from importlib.resources import files

    from grpc_tools import protoc

    sources = proto_files(root)
    if not sources:
        raise FileNotFoundError(f"no .proto files under {root / PROTO_PACKAGE}")
    well_known = str(files("grpc_tools") / "_proto")
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{root}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        *(str(root / s) for s in sources),
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise RuntimeError(f"protoc failed with exit code {rc}: {' '.join(args)}")
    return generated_files(out_dir)


def generated_files(base: Path) -> list[Path]:
    """The generated modules under C{base}'s proto package, relative to C{base}."""
    found = [p for p in (base / PROTO_PACKAGE).iterdir() if p.name.endswith(GENERATED_SUFFIXES)]
    return sorted(p.relative_to(base) for p in found)


def compare_trees(fresh: Path, checked_in: Path) -> list[str]:
    """Describe every generated file that differs between two trees.

    @return: one line per stale, missing or orphaned file; empty when in step.
    """
    fresh_files = set(generated_files(fresh))
    old_files = set(generated_files(checked_in)) if (checked_in / PROTO_PACKAGE).is_dir() else set()
    problems = []
    for rel in sorted(fresh_files | old_files):
        if rel not in old_files:
            problems.append(f"{rel}: missing; run scripts/gen_objects.py")
        elif rel not in fresh_files:
            problems.append(f"{rel}: no .proto generates it any more; delete it")
        elif (fresh / rel).read_bytes() != (checked_in / rel).read_bytes():
            problems.append(f"{rel}: stale, differs from its .proto; run scripts/gen_objects.py")
            old_v, new_v = _gencode_version(checked_in / rel), _gencode_version(fresh / rel)
            if old_v != new_v:
                # A different grpcio-tools, not a schema edit, may be the cause.
                problems[-1] += f" (checked in by protoc for {old_v}, this protoc emits {new_v})"
    return problems


def _gencode_version(path: Path) -> str | None:
    """The C{# Protobuf Python Version:} header protoc writes, if any."""
    for line in path.read_text(errors="replace").splitlines()[:10]:
        if line.startswith("# Protobuf Python Version:"):
            return line.split(":", 1)[1].strip()
    return None


def check(root: Path | None = None) -> list[str]:
    """Regenerate into a temporary directory and compare with the checked-in modules."""
    root = repo_root() if root is None else root
    with tempfile.TemporaryDirectory() as tmp:
        generate(root, Path(tmp))
        return compare_trees(Path(tmp), root)
