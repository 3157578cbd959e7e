"""The distribution installs under the one import name ``idgraph`` and claims no other.

Generic top-level names (``proto``, ``graph``, ``stream``...) collide with other packages:
``proto`` is the import name of proto-plus, which every ``google-cloud-*`` client uses.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_package_folder_is_installed_under_idgraph():
    setuptools = PYPROJECT["tool"]["setuptools"]
    folders = setuptools["package-dir"]
    assert all(name == "idgraph" or name.startswith("idgraph.") for name in folders)
    expected = set()
    for name, folder in folders.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            if "node_modules" not in parts:
                expected.add(".".join([name, *parts]))
    assert set(setuptools["packages"]) == expected  # a new package folder must be listed


def test_the_wheel_has_one_top_level_name(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("idgraph-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"idgraph"}
    assert "idgraph/proto/idgraph/v1/profiles.proto" in names


def test_idgraph_imports_beside_proto_plus(tmp_path):
    """From a neutral directory, as an installed user would: proto-plus keeps ``proto``."""
    code = ("import proto, proto.message\n"
            "assert hasattr(proto, 'Message') and hasattr(proto, 'Field'), proto.__file__\n"
            "import idgraph.service.server, idgraph.proto.idgraph.v1.profiles_pb2 as pb\n"
            "class M(proto.Message):\n"
            "    name = proto.Field(proto.STRING, number=1)\n"
            "assert M(name='x').name == 'x' and pb.LookupRequest(identifier='a').identifier\n")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=120,
                   capture_output=True)


def test_no_module_imports_a_folder_by_its_bare_name():
    """``import graph`` works in a checkout (the folder is on the path) but not installed, and
    it would load a second copy of every class: every import says ``idgraph.``."""
    import ast

    bare = {folder for name, folder in PYPROJECT["tool"]["setuptools"]["package-dir"].items()
            if name != "idgraph"}
    offenders = []
    for path in ROOT.rglob("*.py"):
        if any(part.startswith(".") or part in ("node_modules", "build") for part in
               path.relative_to(ROOT).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                          if n.split(".")[0] in bare]
    assert not offenders, offenders
