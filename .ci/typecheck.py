"""`make typecheck`: run pyright ([tool.pyright] in pyproject.toml) and print what matters.

Errors are printed in full and fail the tier. Warnings (the type-flow rules that pyproject keeps
as warnings, mostly library typing gaps) are summarised by rule and by top-level folder, so the log
stays short; ``--warnings`` prints each of them too, ``--json FILE`` keeps pyright's full report.

usage: python .ci/typecheck.py [--warnings] [--json FILE] [-- PYRIGHT_ARGS...]
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _where(diag: dict, root: Path) -> str:
    path = Path(diag.get("file", "?"))
    if path.is_relative_to(root):
        path = path.relative_to(root)
    start = diag.get("range", {}).get("start", {})
    return f"{path}:{start.get('line', 0) + 1}:{start.get('character', 0) + 1}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warnings", action="store_true", help="print every warning too")
    parser.add_argument("--json", type=Path, help="also write pyright's JSON report here")
    parser.add_argument("pyright_args", nargs="*", help="passed to pyright (after --)")
    args = parser.parse_args(argv)

    pyright = Path(sys.executable).parent / "pyright"
    res = subprocess.run(
        [str(pyright), "--outputjson", *args.pyright_args], cwd=ROOT, capture_output=True, text=True
    )
    try:
        report = json.loads(res.stdout)
    except json.JSONDecodeError:
        print(f"pyright exited {res.returncode} without a JSON report:", file=sys.stderr)
        print((res.stdout + res.stderr)[-4000:], file=sys.stderr)
        return 2
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    diags = report.get("generalDiagnostics", [])
    errors = [d for d in diags if d.get("severity") == "error"]
    warnings = [d for d in diags if d.get("severity") == "warning"]
    shown = errors + (warnings if args.warnings else [])
    for d in shown:
        message = d.get("message", "").replace("\n", " ")
        print(f"{_where(d, ROOT)} - {d['severity']}: {message} ({d.get('rule', '-')})")

    by_rule = collections.Counter(d.get("rule", "-") for d in warnings)
    by_folder = collections.Counter(_where(d, ROOT).split(":")[0].split("/")[0] for d in warnings)
    summary = report.get("summary", {})
    print(
        f"pyright {report.get('version', '?')}: {summary.get('filesAnalyzed', '?')} files, "
        f"{len(errors)} errors, {len(warnings)} warnings "
        f"({summary.get('timeInSec', '?')} s)"
    )
    if warnings:
        print("  warnings by rule:   " + ", ".join(f"{k} {v}" for k, v in by_rule.most_common()))
        print("  warnings by folder: " + ", ".join(f"{k} {v}" for k, v in by_folder.most_common()))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
