"""Run Captum's own test suite against intellego (a developer check, not part of intellego's tests).

Copies ``tests/`` and ``captum/testing`` from a Captum checkout into a temporary directory, rewrites the imports
of the public packages (``captum.attr``, ``captum.metrics``, ``captum.robust``, ``captum.concept``,
``captum.influence``, ``captum.module``, ``captum._utils``) to intellego's, and runs pytest
there with this repository's ``src`` first on the path. Test-only internals that intellego does not provide
(typing aliases, gradient helpers, the quadrature table, a few private names) stay Captum's, so Captum must be
installed as well (it is, in the dev environment, as an oracle). Nothing of Captum is written into this repository.

Usage::

    python scripts/captum_suite.py /path/to/captum [--only tests/attr/test_lime.py] [--extra-path DIR]
        [--keep] [-- extra pytest arguments]

The path may be a working tree or a git repository without one (its ``HEAD`` is read with ``git archive``).
The triage of the results is in docs/porting.md ("Captum's own test suite").
"""

from __future__ import annotations

import argparse
import ast
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Captum modules the tests use for their own plumbing; intellego does not mirror them
KEEP_MODULES = re.compile(r"\bintellego\.(_utils\.(?:typing|common|gradient|models|av|sample_gradient|progress)|"
                          r"attr\._utils\.(?:approximation_methods|batching|common)|influence\._utils\.common)\b")
# names imported from public modules that are Captum internals, not part of intellego's API
KEEP_NAMES = {"_get_deep_layer_name", "_convert_ids_to_pretty_tokens", "_convert_ids_to_pretty_tokens_fallback",
              "_permute_feature", "_set_deep_layer_value", "LayerInputBaselineXGradient",
              "SUPPORTED_NOISE_TUNNEL_TYPES", "_parameter_arnoldi", "_parameter_distill"}


def extract(checkout: Path, dest: Path) -> None:
    """``tests/`` and ``captum/testing`` (as ``captum_testing``) of the checkout into ``dest``."""
    if (checkout / "tests").is_dir():
        shutil.copytree(checkout / "tests", dest / "tests")
        shutil.copytree(checkout / "captum" / "testing", dest / "captum_testing")
        return
    data = subprocess.run(["git", "--git-dir", str(checkout), "archive", "HEAD", "tests", "captum/testing"],
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    (dest / "captum" / "testing").rename(dest / "captum_testing")
    shutil.rmtree(dest / "captum")


def _split_kept_names(text: str) -> str:
    """``from intellego.X import a, _private`` -> intellego for ``a``, Captum's ``X`` for the kept names."""
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    for node in sorted((n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)), key=lambda n: -n.lineno):
        module = node.module or ""
        if not module.startswith("intellego") or not any(a.name in KEEP_NAMES for a in node.names):
            continue
        indent = lines[node.lineno - 1][:len(lines[node.lineno - 1]) - len(lines[node.lineno - 1].lstrip())]

        def names(aliases: list[ast.alias]) -> str:
            return ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in aliases)

        ours = [a for a in node.names if a.name not in KEEP_NAMES]
        theirs = [a for a in node.names if a.name in KEEP_NAMES]
        new = [f"{indent}from {module} import ({names(ours)})\n"] if ours else []
        new.append(f"{indent}from {module.replace('intellego', 'captum', 1)} import ({names(theirs)})\n")
        lines[node.lineno - 1:node.end_lineno] = new
    return "".join(lines)


def rewrite(text: str) -> str:
    """The imports of one file rewritten to intellego (see the module docstring)."""
    text = text.replace("captum.testing", "captum_testing")
    text = re.sub(r"\bcaptum\.(attr|_utils|metrics|robust|concept|influence|module|insights)\b", r"intellego.\1", text)
    text = re.sub(r"^(\s*)import captum$", r"\1import intellego as captum", text, flags=re.M)
    text = KEEP_MODULES.sub(r"captum.\1", text)
    return _split_kept_names(text) if any(name in text for name in KEEP_NAMES) else text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="a Captum checkout (working tree or git directory)")
    parser.add_argument("--only", default="tests/attr,tests/metrics,tests/robust,tests/concept,tests/influence,"
                        "tests/module,tests/utils", help="test path(s) inside the checkout, comma-separated")
    parser.add_argument("--extra-path", action="append", default=[], help="more entries for PYTHONPATH "
                        "(e.g. where the 'parameterized' package is installed)")
    parser.add_argument("--keep", action="store_true", help="keep the rewritten copy and print its path")
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []  # after --: pytest's arguments
    args = parser.parse_args(argv[:len(argv) - len(extra) - (1 if "--" in argv else 0)])
    work = Path(tempfile.mkdtemp(prefix="captum_suite_"))
    try:
        extract(args.checkout.resolve(), work)
        for path in list(work.rglob("*.py")):
            path.write_text(rewrite(path.read_text()))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(work), str(REPO / "src"), *args.extra_path]))
        cmd = [sys.executable, "-m", "pytest", *args.only.split(","), "-q", "-p", "no:cacheprovider",
               *extra]
        return subprocess.run(cmd, cwd=work, env=env).returncode
    finally:
        if args.keep:
            print(f"rewritten copy kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
