"""benchmarks/gpu_report.py, the one-call GPU check, runs end to end on the CPU (--dry-run: Triton's
interpreter, tiny shapes), so it is known to work before a GPU minute is spent on it (issue 25)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ["environment", "parity_tests", "float64_case", "zoo_parity", "streaming", "compile_graphs", "kernels",
            "end_to_end"]


def test_the_gpu_report_runs_every_section_in_a_dry_run(tmp_path):
    # The time budget is the GPU session's; on a loaded CPU it would skip sections and fail the test by the
    # clock, so the dry run gets an unbounded one (the subprocess timeout is the hang guard).
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_report.py"), str(tmp_path), "--dry-run",
                          "--budget-s", "1e9"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["dry_run"] and list(report["sections"]) == SECTIONS
    failed = {k: v.get("error") or v.get("skipped") for k, v in report["sections"].items() if "error" in v or "skipped" in v}
    assert not failed, failed
    s = report["sections"]
    assert "passed" in s["parity_tests"]["summary"] and "failed" not in s["parity_tests"]["summary"]
    assert s["float64_case"]["spikes_equal"] and s["float64_case"]["h_equal"]
    from stc_zoo.zoo import REGISTRY

    assert {r["model"] for r in s["zoo_parity"]["rows"]} == set(REGISTRY)  # every zoo entry
    assert all(r["spikes triton == torch"] and r["labels equal to CPU"] for r in s["zoo_parity"]["rows"])
    assert s["streaming"]["bit_equal"] and s["compile_graphs"]["compile"]["ok"]
    assert s["kernels"]["rows"] and s["end_to_end"]["rows"] and s["end_to_end"]["training"]
    text = (tmp_path / "report.md").read_text()
    assert "Dry run on the CPU" in text and "## Verdict" in text
    assert out.stdout.splitlines()[0].startswith("| target | measured | met |")  # the verdict is printed last
    assert "(dry run)" in out.stdout and "yes" not in out.stdout.split("sections failed")[0]  # no claims


def test_make_gpu_report_installs_the_carried_wheels_and_runs_the_script():
    plan = subprocess.run(["make", "-n", "gpu-report", "GPU_OUT=/tmp/x"], cwd=ROOT, capture_output=True, text=True)
    assert plan.returncode == 0, plan.stderr
    assert "--no-index --no-deps" in plan.stdout and ".gpu/wheels/*.whl" in plan.stdout
    assert "benchmarks/gpu_report.py /tmp/x" in plan.stdout
