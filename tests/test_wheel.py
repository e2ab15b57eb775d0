"""A plain (non-editable) install: the built wheel, installed apart from the source tree, holds every
module of the package and the pretrained model."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import importlib, pathlib, pkgutil, sys
import torch
import capsnet_lib as cl
site = pathlib.Path(sys.argv[1]).resolve()
assert pathlib.Path(cl.__file__).resolve().is_relative_to(site), f"imported {cl.__file__}, not the wheel's copy"
modules = [m.name for m in pkgutil.walk_packages(cl.__path__, "capsnet_lib.")]
for name in modules:
    importlib.import_module(name)
missing = [name for name in cl.__all__ if not hasattr(cl, name)]
assert not missing, f"public names missing: {missing}"
model = cl.load_pretrained()
print(tuple(model(torch.rand(2, 1, 28, 28)).lengths.shape))
print(" ".join(sorted(modules)))
"""


def test_the_built_wheel_installed_apart_holds_every_module_and_the_pretrained_model(tmp_path):
    quiet = dict(check=True, capture_output=True, text=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(ROOT),
                    "-w", str(tmp_path / "dist")], **quiet)
    wheel = next((tmp_path / "dist").glob("capsnet_lib-*.whl"))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   **quiet)
    env = {**os.environ, "PYTHONPATH": str(site)}           # ahead of the editable install of this checkout
    result = subprocess.run([sys.executable, "-c", CHECK, str(site)], cwd=tmp_path, env=env, **quiet)
    shape, installed = result.stdout.strip().splitlines()
    assert shape == "(2, 10)"
    source = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
              for p in (ROOT / "capsnet_lib").rglob("*.py")} - {"capsnet_lib"}
    assert installed.split() == sorted(source), "the wheel must hold every module and subpackage of the source"
