"""The package's layout keeps its promises: commands are thin and imported by nothing, the library has
no import cycles, and its functions stay short (issue 16)."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "capsnet_lib"
COMMANDS = ["train", "evaluate", "sweep", "table1", "robustness", "web_export", "download"]   # python -m capsnet_lib.<name>
MAX_LINES, MAX_PARAMETERS = 50, 6


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name):
    """The capsnet_lib modules `name` imports, anywhere in its file (inside functions too)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:     # `from . import x` names a module; `from .m import x` a name in m
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in MODULES and m != name}


def test_the_import_reader_sees_relative_and_nested_imports():
    assert "capsnet_lib.capsules" in imports("capsnet_lib.model")                      # from .capsules import
    assert "capsnet_lib.training.distributed" in imports("capsnet_lib.training.loop")  # from . import distributed
    assert "capsnet_lib.model" in imports("capsnet_lib.figures.viz")                   # from ..model import


def test_no_module_imports_a_command_module():
    commands = {f"capsnet_lib.{c}" for c in COMMANDS}
    assert commands <= set(MODULES)
    for name in MODULES:
        assert not imports(name) & commands, f"{name} imports the command module(s) {imports(name) & commands}"


def test_the_library_has_no_import_cycles():
    done, on_path = set(), []

    def visit(name):
        if name in on_path:
            pytest.fail("import cycle: " + " -> ".join(on_path[on_path.index(name):] + [name]))
        if name in done:
            return
        on_path.append(name)
        for target in sorted(imports(name)):
            visit(target)
        on_path.pop()
        done.add(name)
    for name in MODULES:
        visit(name)


def test_every_function_is_short_and_takes_few_parameters():
    too_long, too_many = [], []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            args = node.args
            parameters = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs if a.arg not in ("self", "cls")]
            parameters += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
            if node.end_lineno - node.lineno + 1 > MAX_LINES:
                too_long.append(f"{name}.{node.name}")
            if len(parameters) > MAX_PARAMETERS:
                too_many.append(f"{name}.{node.name}({', '.join(parameters)})")
    assert not too_long, f"functions over {MAX_LINES} lines: {too_long}"
    assert not too_many, f"functions with more than {MAX_PARAMETERS} parameters: {too_many}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_starts_without_a_runtime_warning(command):
    """The package must not import a command module before `python -m` runs it (issue: every user
    of the README's commands saw "found in sys.modules ... unpredictable behaviour")."""
    result = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", f"capsnet_lib.{command}", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "RuntimeWarning" not in result.stderr, result.stderr[-500:]
