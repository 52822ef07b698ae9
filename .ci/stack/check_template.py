"""Fails when template.yaml, once expanded as CloudFormation expands it, has a reference cycle or
another error cfn-lint finds in plain CloudFormation, naming the resources; and when a function has no
sample under events/<binary>/, or no log group and alarms.

cfn-lint on template.yaml alone validates SAM resources against SAM's schemas and no longer runs the
translator, so it misses what only exists after the transform: a cycle through the HTTP API's generated
OpenAPI body (which names every function) when a function names the API.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import template as tpl

ROOT = Path(__file__).resolve().parents[2]


def problems(template_path, events_dir):
    """What is wrong with the template, one line each; and the expanded template."""
    source = tpl.load(template_path)
    packaged = tpl.package(source, lambda binary: ("artifacts", f"{binary}.zip"))
    expanded = tpl.expand(packaged, str(template_path))
    found = []
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as out:
        json.dump(expanded, out)
    lint = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), "--format", "parseable", out.name],
                          capture_output=True, text=True)
    Path(out.name).unlink()
    if lint.returncode not in (0, 4, 8, 12):  # 4, 8, 12: warnings or informational findings only
        found += [f"expanded template: {line.split(':', 5)[-1]}" for line in lint.stdout.splitlines()]
        found += [line for line in lint.stderr.splitlines() if line.strip()]
    for logical, binary in tpl.functions(source):
        name = logical.removesuffix("Function")
        for operated in (f"{name}LogGroup", f"{name}ErrorsAlarm", f"{name}ThrottlesAlarm"):
            if operated not in expanded["Resources"]:
                found.append(f"{logical} ({binary}): no {operated} (add {name} to Fn::ForEach::FunctionOperations)")
        samples = Path(events_dir) / binary
        if not (samples.is_dir() and any(samples.glob("*.json"))):
            found.append(f"{logical} ({binary}): no sample event under events/{binary}/")
    return found, expanded


def main():
    found, expanded = problems(ROOT / "template.yaml", ROOT / "events")
    if found:
        print("\n".join(f"FAIL {line}" for line in found))
        sys.exit(1)
    kinds = {}
    for resource in expanded["Resources"].values():
        kinds[resource["Type"]] = kinds.get(resource["Type"], 0) + 1
    print(f"expanded template: {len(expanded['Resources'])} resources, no cycle, cfn-lint clean: "
          + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))


if __name__ == "__main__":
    main()
