"""The bars ``tingxie transcribe`` and ``tingxie submit --wait`` draw on a terminal."""
from __future__ import annotations

import io
import re
import time

from cli.progress import StageBar, UploadBar


def test_the_bar_names_the_stage_and_its_clock_runs_through_a_long_stage():
    out = io.StringIO()
    with StageBar("jfk.flac", file=out, disable=False, tick_s=0.05) as bar:
        bar.update("decode", 0.0)
        bar.update("asr", 0.12)
        time.sleep(1.3)  # one ASR batch: no new fraction for a while
        bar.update("itn", 1.0)
        bar.update("done", 1.0)
    frames = [f.strip() for f in out.getvalue().split("\r") if f.strip()]
    assert not [f for f in frames if "| ," in f or ", asr" in f]
    asr = [f for f in frames if re.match(r"jfk\.flac asr +12%\|", f)]
    assert {f[-5:] for f in asr} >= {"00:00", "00:01"}  # redrawn with its clock moving
    assert re.match(r"jfk\.flac decode +0%\|", frames[1])
    assert re.match(r"jfk\.flac done +100%\|", frames[-1])
    # The bar keeps its place whatever the stage's name.
    assert len({f.index("%|") for f in frames[1:]}) == 1


def test_a_long_name_is_shortened_and_the_upload_shows_bytes():
    out = io.StringIO()
    name = "a-very-long-recording-name-from-a-meeting-2024.mp4"
    bar = UploadBar(name, file=out, disable=False)
    bar.update(512 * 1024, 2 * 1024**2)
    bar.update(2 * 1024**2, 2 * 1024**2)
    bar.close()
    last = out.getvalue().split("\r")[-1]
    assert last.startswith("a-very-long-recording-name-from… upload   100%|")
    assert "2.00M/2.00M" in last
