"""The template check catches what it is for, on broken copies of template.yaml: a function that names
the HTTP API again (a cycle after the SAM transform), a function without samples, and one without its
log group and alarms. Each failure
must name the resources. Run by .ci/test after the check itself."""

import shutil
import sys
import tempfile
from pathlib import Path

from check_template import ROOT, problems

CYCLE = '        RUST_LOG: info\n        CRM_PUBLIC_BASE_URL: !Sub "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"\n'


def broken(edit):
    scratch = Path(tempfile.mkdtemp())
    text = (ROOT / "template.yaml").read_text()
    (scratch / "template.yaml").write_text(edit(text))
    shutil.copytree(ROOT / "events", scratch / "events")
    return scratch


def main():
    failures = []
    scratch = broken(lambda text: text.replace("        RUST_LOG: info\n", CYCLE, 1))
    found, _ = problems(scratch / "template.yaml", scratch / "events")
    if not any("Circular" in line and "HttpApi" in line for line in found):
        failures.append(f"a function naming the HTTP API was not reported as a cycle with HttpApi: {found}")
    shutil.rmtree(scratch)

    scratch = broken(lambda text: text)
    shutil.rmtree(scratch / "events" / "sync-health")
    found, _ = problems(scratch / "template.yaml", scratch / "events")
    if found != ["SyncHealthFunction (sync-health): no sample event under events/sync-health/"]:
        failures.append(f"a function without samples was not reported by name alone: {found}")
    shutil.rmtree(scratch)

    scratch = broken(lambda text: text.replace(" TasksUpdate,", "", 1))
    found, _ = problems(scratch / "template.yaml", scratch / "events")
    if not any(line.startswith("TasksUpdateFunction (tasks-update): no TasksUpdateLogGroup") for line in found):
        failures.append(f"a function left out of the operations loop was not reported by name: {found}")
    shutil.rmtree(scratch)

    for line in failures:
        print(f"FAIL {line}")
    print(f"{3 - len(failures)} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
