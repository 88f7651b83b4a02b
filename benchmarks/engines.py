"""The engines of rules with memory and element-wise operations, against the previous mechanism, in the same run.

    python benchmarks/engines.py [--baseline 90fcb05] [--baseline-timeout 150] [--rows hb4,adam2]

Each row runs in a fresh process (imports not timed), once on this checkout and once on the
baseline revision (the code before issue 15: SymPy's fraction field, slow-manifold sweeps at full
truncation, B-series composition by elementary differentials at shifted points, zero tests by
`expand`), exported with `git archive` into a temporary folder. Prints both times and the ratio
baseline / now; a baseline that runs past --baseline-timeout is printed as "> T s".
Tree coefficients have their own script (benchmarks/trees.py, against kauri).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

SETUP = """
import warnings, sympy as sp, bea
warnings.simplefilter("ignore")
a, b = sp.symbols("a b")
TWO_PARAM = (sp.Rational(3, 5) - a * b) ** 2 / 2
"""

#: (name, what the issue measured, code timed after SETUP)
ROWS = [
    ("adam-local", "verify.local_error(Adam, two-param, order 1, 4 step sizes)",
     "from bea.rules import Adam\nfrom bea.verify import local_error, model\n"
     "local_error(Adam(beta=0.9, rho=0.999, eps=0.01), model('two-param'), 1, "
     "step_sizes=[4e-4, 2e-4, 1e-4, 5e-5])"),
    ("hb4", "heavy ball, coordinate-free, order 4", "bea.modified_equation(bea.rules.HeavyBall(), 4)"),
    ("hb6", "heavy ball, coordinate-free, order 6", "bea.modified_equation(bea.rules.HeavyBall(), 6)"),
    ("adam2", "Adam, coordinate-free, order 2", "bea.modified_equation(bea.rules.Adam(), 2)"),
    ("adam3", "Adam, coordinate-free, order 3", "bea.modified_equation(bea.rules.Adam(), 3)"),
    ("hb3-concrete", "heavy ball, 2-parameter model, order 3",
     "bea.modified_equation(bea.rules.HeavyBall(), 3, loss=TWO_PARAM, params=[a, b])"),
    ("verify-adam-auto", "bea verify adam --model two-param --order 1 (default step sizes; failed before)",
     "from bea.cli import main\nimport contextlib, io\n"
     "with contextlib.redirect_stdout(io.StringIO()):\n"
     "    status = main(['verify', 'adam', '--model', 'two-param', '--order', '1', '--set', 'beta=9/10',"
     " '--set', 'rho=999/1000', '--set', 'eps=1e-2'])\n"
     "assert status == 0, status"),
    ("adam3-concrete", "Adam (numbers), 2-parameter model, order 3 (what verify derives for order 1)",
     "bea.modified_equation(bea.rules.Adam(beta=0.9, rho=0.999, eps=0.01), 3, loss=TWO_PARAM, params=[a, b])"),
]


def _timed(code: str, path: str, timeout: float) -> float | str | None:
    """Seconds of `code` in a fresh interpreter importing bea from `path` (None: past the timeout; "fails":
    the baseline raised)."""
    program = SETUP + "import time\n_start = time.perf_counter()\n" + code + \
        "\nprint('SECONDS', time.perf_counter() - _start)\n"
    env = dict(os.environ, PYTHONPATH=path, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"),
               JAX_ENABLE_X64="1")
    try:
        done = subprocess.run([sys.executable, "-c", program], cwd=path, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    for line in done.stdout.splitlines():
        if line.startswith("SECONDS"):
            return float(line.split()[1])
    if path != ROOT:
        return "fails"  # the baseline could not do it (the automatic step sizes are new)
    raise RuntimeError(f"the benchmark failed in {path}:\n{done.stderr[-2000:]}")


def _export(revision: str, folder: str) -> str:
    archive = os.path.join(folder, "baseline.tar")
    subprocess.run(["git", "archive", "--format=tar", "-o", archive, revision], cwd=ROOT, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(os.path.join(folder, "src"), filter="data")
    return os.path.join(folder, "src")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="90fcb05", help="git revision of the baseline (default: before issue 15)")
    parser.add_argument("--baseline-timeout", type=float, default=150.0, help="seconds before a baseline row is cut")
    parser.add_argument("--no-baseline", action="store_true", help="time this checkout only")
    parser.add_argument("--rows", default=",".join(name for name, _, _ in ROWS))
    args = parser.parse_args()
    wanted = args.rows.split(",")
    print(f"{'row':16s} {'now [s]':>9s} {'baseline [s]':>13s} {'ratio':>8s}  task")
    with tempfile.TemporaryDirectory() as folder:
        baseline = None if args.no_baseline else _export(args.baseline, folder)
        for name, what, code in ROWS:
            if name not in wanted:
                continue
            now = _timed(code, ROOT, timeout=3600)
            if baseline is None:
                print(f"{name:16s} {now:9.2f} {'-':>13s} {'-':>8s}  {what}", flush=True)
                continue
            before = _timed(code, baseline, timeout=args.baseline_timeout)
            if before == "fails":
                shown, ratio = "fails", "-"
            else:
                shown = f"> {args.baseline_timeout:.0f}" if before is None else f"{before:.2f}"
                ratio = f"> {args.baseline_timeout / now:.0f}x" if before is None else f"{before / now:.1f}x"
            print(f"{name:16s} {now:9.2f} {shown:>13s} {ratio:>8s}  {what}", flush=True)


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"(total {time.perf_counter() - start:.0f} s)")
