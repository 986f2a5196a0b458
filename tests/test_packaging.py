"""Packaging: pyproject.toml and environment.yml agree, the package is backend-neutral, exports."""
import re
import tomllib
from pathlib import Path

import pytest

import lstmcor

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lstmcor"

# Names the package promises at its top level (issue 2's building blocks).
TOP_LEVEL = [
    "SqueezeExcitation",
    "ChannelsToSequence",
    "SequenceToChannels",
    "PeepholeConvLSTM2D",
    "spatial_transform",
    "SpatialTransformer",
    "warp",
    "mse",
    "grad_l2",
    "total_loss",
    "MSE",
    "Grad",
    "jacobian_determinant",
    "folding_fraction",
    "sdlogj",
    "dice",
    "mean_dice",
    "endpoint_error",
]

# Conda-only entries of environment.yml that are not Python requirements of the package.
ENV_ONLY = {"python", "pip"}


# ----------------------------------------------------------------------------- parsing
def _pyproject():
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)


def _environment_lists(text):
    """A tiny parser for environment.yml: the conda and pip items of ``dependencies:``.

    Handles the usual layout only: ``dependencies:`` then ``- item`` lines, with one nested
    ``- pip:`` list of ``- item`` lines indented deeper. Quotes and comments are stripped.
    """
    conda, pip = [], []
    in_deps, pip_indent = False, None
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        stripped = line.strip()
        if indent == 0:
            in_deps = stripped == "dependencies:"
            pip_indent = None
            continue
        if not in_deps or not stripped.startswith("- "):
            continue
        item = stripped[2:].strip()
        if pip_indent is not None and indent > pip_indent:
            pip.append(_unquote(item))
            continue
        pip_indent = None
        if item == "pip:":
            pip_indent = indent
        else:
            conda.append(_unquote(item))
    return conda, pip


def _unquote(item):
    if len(item) >= 2 and item[0] == item[-1] and item[0] in "'\"":
        return item[1:-1]
    return item


def _normalise(requirement):
    """(name, spec, marker) with PEP 503 names, spaces dropped, specifier parts sorted."""
    requirement, _, marker = requirement.partition(";")
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)", requirement)
    assert match, f"cannot read requirement {requirement!r}"
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    extras = (match.group(2) or "").replace(" ", "")
    spec = ",".join(sorted(part.strip().replace(" ", "") for part in match.group(3).split(",") if part.strip()))
    marker = re.sub(r"\s+", "", marker).replace('"', "'")
    return name + extras, spec, marker


def _env_requirements():
    path = ROOT / "environment.yml"
    if not path.exists():
        pytest.fail("environment.yml is missing: the conda route must list the same packages as pyproject.toml")
    conda, pip = _environment_lists(path.read_text())
    items = [c for c in conda if _normalise(c)[0] not in ENV_ONLY]
    items += [p for p in pip if not p.startswith("-")]  # "-e ." installs the package itself
    return conda, pip, {_normalise(i) for i in items}


# ----------------------------------------------------------------------------- tests
def test_environment_parser_on_a_sample():
    sample = """name: x
channels:
  - conda-forge
dependencies:
  - python=3.11  # comment
  - pip
  - "numpy>=1.26"
  - pip:
      - "keras>=3.8"
      - 'tensorflow-cpu>=2.18; sys_platform != "darwin"'
      - -e .
  - scipy
other:
  - not-a-dependency
"""
    conda, pip = _environment_lists(sample)
    assert conda == ["python=3.11", "pip", "numpy>=1.26", "scipy"]
    assert pip == ["keras>=3.8", 'tensorflow-cpu>=2.18; sys_platform != "darwin"', "-e ."]
    assert _normalise(pip[1]) == ("tensorflow-cpu", ">=2.18", "sys_platform!='darwin'")
    assert _normalise("Jupyter_Book >= 1.0.4, <2") == ("jupyter-book", "<2,>=1.0.4", "")


def test_tiny_parser_agrees_with_a_yaml_parser():
    """PyYAML is not a dependency; where it happens to be installed, it cross-checks the parser."""
    yaml = pytest.importorskip("yaml")
    text = (ROOT / "environment.yml").read_text()
    conda, pip = _environment_lists(text)
    deps = yaml.safe_load(text)["dependencies"]
    assert conda == [d for d in deps if isinstance(d, str)]
    assert pip == [p for d in deps if isinstance(d, dict) for p in d.get("pip", [])]


def test_pyproject_dependencies_are_in_environment_yml():
    _, _, env = _env_requirements()
    project = {_normalise(d) for d in _pyproject()["project"]["dependencies"]}
    missing = sorted(project - env)
    assert not missing, f"in pyproject.toml but not in environment.yml (name, spec, marker): {missing}"


def test_environment_yml_packages_are_in_pyproject():
    _, _, env = _env_requirements()
    project = _pyproject()["project"]
    declared = {_normalise(d) for d in project["dependencies"]}
    for extra in project.get("optional-dependencies", {}).values():
        declared |= {_normalise(d) for d in extra}
    extra_in_env = sorted(env - declared)
    assert not extra_in_env, f"in environment.yml but not in pyproject.toml (name, spec, marker): {extra_in_env}"


def test_environment_python_satisfies_requires_python():
    conda, pip, _ = _env_requirements()
    assert "-e ." in pip, "environment.yml should install the package itself (pip: -e .)"
    pythons = [c for c in conda if _normalise(c)[0] == "python"]
    assert len(pythons) == 1
    version = re.search(r"(\d+)\.(\d+)", pythons[0])
    required = re.fullmatch(r">=\s*(\d+)\.(\d+)", _pyproject()["project"]["requires-python"].strip())
    assert version and required
    assert tuple(map(int, version.groups())) >= tuple(map(int, required.groups()))


def test_version_matches_pyproject():
    assert lstmcor.__version__ == _pyproject()["project"]["version"]


#: The one module allowed to name a backend: Keras 3 has no backend-neutral gradient, so
#: lstmcor.autodiff dispatches on the active backend (importing it only when asked) and is tested
#: against finite differences on the backend the suite runs with (tests/test_autodiff.py; make test-jax).
BACKEND_DISPATCH = {"autodiff.py"}


def test_no_tensorflow_calls_in_the_package():
    """Same as `grep -rn "tf\\." lstmcor/` finding nothing: the package is backend-neutral."""
    hits = []
    for path in sorted(PACKAGE.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        if path.parent == PACKAGE and path.name in BACKEND_DISPATCH:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if "tf." in line:
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not hits, "tf. usage in the package:\n" + "\n".join(hits)


def test_no_backend_imports_in_the_package():
    pattern = re.compile(r"^\s*(import|from)\s+(tensorflow|jax|torch)\b", re.MULTILINE)
    hits = [str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
            if pattern.search(p.read_text()) and not (p.parent == PACKAGE and p.name in BACKEND_DISPATCH)]
    assert not hits, f"backend-specific imports in {hits}"
    # the dispatching module imports a backend only inside a function, never at import time
    for name in BACKEND_DISPATCH:
        top_level = re.compile(r"^(import|from)\s+(tensorflow|jax|torch)\b", re.MULTILINE)
        assert not top_level.search((PACKAGE / name).read_text()), name


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_top_level_exports(name):
    assert name in lstmcor.__all__
    assert getattr(lstmcor, name) is not None


def test_all_names_resolve():
    for name in lstmcor.__all__:
        assert hasattr(lstmcor, name), name


def test_validate_module_exports_checks():
    from lstmcor import validate

    assert callable(validate.check_spatial_shape)
    assert callable(validate.check_image_batch)


@pytest.mark.slow
def test_a_regular_install_holds_every_module(tmp_path):
    """``pip install .`` (not editable): the wheel holds every module and subpackage, and they import."""
    import subprocess
    import sys
    import zipfile

    import shutil

    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info/ beside pyproject.toml
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / "lstmcor", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tools" / "jupyterlab", source / "tools" / "jupyterlab")
    wheel_dir = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(wheel_dir), str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheel_dir.glob("lstmcor-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    assert expected and expected <= names, sorted(expected - names)
    assert "lstmcor/py.typed" in names
    overrides = "lstmcor-0.1.0.data/data/share/jupyter/lab/settings/overrides.d/lstmcor.json"
    assert overrides in names, sorted(n for n in names if ".data/" in n)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    code = ("import lstmcor, lstmcor.data.io, lstmcor.data.layouts, lstmcor.settings; "
            "print(lstmcor.__file__)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": ""},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(target))


def test_jupyterlab_opens_chapters_as_notebooks(tmp_path):
    """The settings file `pip install` puts into overrides.d makes .py files open as Jupytext notebooks,
    as JupyterLab's own settings reader sees it."""
    import shutil
    import tomllib

    from jupyterlab_server.settings_utils import _get_overrides

    files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    (folder, sources), = files.items()
    assert folder == "share/jupyter/lab/settings/overrides.d"
    app_settings = tmp_path / "share" / "jupyter" / "lab" / "settings"
    (app_settings / "overrides.d").mkdir(parents=True)
    for source in sources:
        shutil.copy(ROOT / source, app_settings / "overrides.d")
    overrides, error = _get_overrides(str(app_settings))
    assert not error
    viewers = overrides["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers["python"] == "Jupytext Notebook"


def test_the_project_environment_has_the_jupyterlab_override():
    """`make install` (an editable install, which skips data-files) still puts the override in place."""
    import sys

    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip("not running in the project's .venv made by `make install`")
    installed = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.d" / "lstmcor.json"
    assert installed.is_file(), "run `make install`: the Makefile copies tools/jupyterlab/lstmcor.json there"
    assert installed.read_text() == (ROOT / "tools" / "jupyterlab" / "lstmcor.json").read_text()
