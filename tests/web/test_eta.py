"""The page's time-left estimate (web/static/eta.js), run by node as the browser runs it: it never
grows while the job advances, and a stage that reports seldom (ASR per batch) does not inflate it."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ETA_JS = Path(__file__).resolve().parents[2] / "web" / "static" / "eta.js"

pytestmark = [pytest.mark.subprocess,
              pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")]


def estimates(updates: list[tuple[str, float, float]]) -> list[float | None]:
    """leftS after each (stage, progress, seconds since start) update."""
    script = (f"import {{ estimateTimeLeft }} from {json.dumps(ETA_JS.as_uri())};\n"
              f"let state = null; const out = [];\n"
              f"for (const [stage, progress, nowS] of {json.dumps(updates)}) {{\n"
              f"  const r = estimateTimeLeft(state, {{ stage, progress, nowS }}); state = r.state; out.push(r.leftS);\n"
              f"}}\nconsole.log(JSON.stringify(out));\n")
    run = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_a_60_s_file_whose_asr_sits_at_12_percent_gets_no_growing_estimate():
    """Decode and VAD in 2 s, ASR reporting its first batch only after 20 s, then steadily."""
    updates = [("decode", 0.0, 0.0), ("decode", 0.03, 1.0), ("vad", 0.05, 1.5), ("vad", 0.12, 3.0),
               ("asr", 0.12, 3.2)]
    updates += [("asr", 0.12, 3.2 + k) for k in range(1, 20)]  # the page re-renders; ASR sits at 12 %
    updates += [("asr", round(0.12 + 0.1 * k, 2), 23.0 + 2 * k) for k in range(1, 8)]
    updates += [("punc", 0.95, 39.0), ("itn", 0.99, 39.5)]
    left = estimates(updates)
    shown = [(u, s) for u, s in zip(updates, left) if s is not None]
    assert shown, "an estimate is shown once there is a rate"
    for (before, before_s), (after, after_s) in zip(shown, shown[1:]):
        if after[1] >= before[1]:  # the job advanced (or held): the estimate did not grow
            assert after_s <= before_s + 1e-9, (before, before_s, after, after_s)
    assert max(s for _, s in shown) < 60  # never "about 25 min" for a 60 s file


def test_a_fresh_measurement_after_the_estimate_ran_out_is_shown():
    left = estimates([("asr", 0.1, 0.0), ("asr", 0.2, 1.0), ("asr", 0.5, 4.0), ("asr", 0.5, 20.0), ("asr", 0.6, 30.0)])
    assert left[:2] == [None, None]  # the stage's first advance starts the measurement
    assert 4.9 < left[2] < 5.1  # 30 % in 3 s: 5 s for the last 50 %
    left = left[1:]
    assert left[2] is None  # ran out while the job sat still: nothing rather than a wrong figure
    assert left[3] is not None and left[3] > 0  # measured again
