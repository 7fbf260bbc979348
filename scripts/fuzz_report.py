"""Which API operations a Schemathesis run reached with a 2xx (called by scripts/fuzz.sh).

Reads the run's NDJSON event report (``schemathesis run --report ndjson``): each finished
scenario records its test cases (method and path template of the operation they target) and
the response each one got. Operations are listed from the OpenAPI document, so one that was
never reached at all shows up too. Requests with a method the operation does not have (the
coverage phase sends those on purpose) count for no operation.

Exit status: 0 when the report could be read and holds responses; 2 when it is missing or
empty, i.e. the run tested nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace", "query"}


def operations(spec: dict[str, Any]) -> list[str]:
    found = []
    for path, item in (spec.get("paths") or {}).items():
        for method in item:
            if method.lower() in HTTP_METHODS:
                found.append(f"{method.upper()} {path}")
    return found


def statuses_by_operation(report: Path) -> dict[str, Counter[int]]:
    """``"METHOD /path/{template}"`` -> count of each response status code."""
    seen: dict[str, Counter[int]] = defaultdict(Counter)
    with report.open() as fh:
        for line in fh:
            event = json.loads(line)
            scenario = event.get("ScenarioFinished")
            if not scenario:
                continue
            recorder = scenario.get("recorder") or {}
            cases = recorder.get("cases") or {}
            for case_id, interaction in (recorder.get("interactions") or {}).items():
                case = (cases.get(case_id) or {}).get("value") or {}
                response = interaction.get("response") or {}
                if "method" not in case or "path" not in case or "status_code" not in response:
                    continue
                seen[f"{case['method'].upper()} {case['path']}"][int(response["status_code"])] += 1
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, required=True, help="the OpenAPI JSON document")
    parser.add_argument("--role", default="anonymous")
    parser.add_argument("report", type=Path, help="Schemathesis NDJSON report")
    args = parser.parse_args()

    if not args.report.exists():
        print(f"fuzz report ({args.role}): no report at {args.report}", file=sys.stderr)
        return 2
    ops = operations(json.loads(args.spec.read_text()))
    seen = statuses_by_operation(args.report)
    if not any(seen.values()):
        print(f"fuzz report ({args.role}): the report holds no responses", file=sys.stderr)
        return 2

    reached = [op for op in ops if any(200 <= code < 300 for code in seen.get(op, {}))]
    print(f"fuzz report ({args.role}): operations reached with a 2xx")
    width = max((len(op) for op in ops), default=0)
    for op in ops:
        codes = seen.get(op, Counter())
        summary = ", ".join(f"{code}x{n}" for code, n in sorted(codes.items())) or "no requests"
        mark = "2xx" if op in reached else "---"
        print(f"  {mark}  {op:<{width}}  {sum(codes.values())} requests: {summary}")
    print(f"fuzz report ({args.role}): {len(reached)} of {len(ops)} operations reached a 2xx")
    return 0


if __name__ == "__main__":
    sys.exit(main())
