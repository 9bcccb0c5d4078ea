"""What one media probe costs (figures printed, not a test).

Paired rounds over real speech; each round times, one after the other:
  child      media.probe: PyAV in a limited process forked by the probe's fork server (what the web
             tier and workers run)
  in-process PyAV's av.open in this process, the same reads without the child (no isolation)
  ffmpeg -i  the replaced approach: `ffmpeg -i` with the bundled and Debian's binaries, stderr read
Prints the median per call of each and the median of the per-round ratio child / in-process.

    python -m bench.media_probe               # 20 rounds over jfk.flac and asr_example.mp3
    python -m bench.media_probe --rounds 50
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

import media
from media._probe_child import OPEN_OPTIONS
from tests.support.speech import SPEECH_DIR



def _in_process(path: Path) -> None:
    import av

    with av.open("file:" + str(path), container_options=OPEN_OPTIONS) as container:
        container.streams.audio[0].codec_context.sample_rate


def _ffmpeg_banner(binary: str, path: Path) -> None:
    subprocess.run([binary, "-hide_banner", "-nostdin", "-i", str(path)], stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    import imageio_ffmpeg

    binaries = {"ffmpeg -i (bundled)": imageio_ffmpeg.get_ffmpeg_exe()}
    if os.access("/usr/bin/ffmpeg", os.X_OK):
        binaries["ffmpeg -i (Debian)"] = "/usr/bin/ffmpeg"
    files = [SPEECH_DIR / "jfk.flac", SPEECH_DIR / "asr_example.mp3"]
    _in_process(files[0])  # import av once, outside the rounds
    times: dict[str, list[float]] = {"child": [], "in-process": [], **{name: [] for name in binaries}}
    for round_ in range(args.rounds):
        path = files[round_ % len(files)]
        times["child"].append(_timed(lambda: media.probe(path)))
        times["in-process"].append(_timed(lambda: _in_process(path)))
        for name, binary in binaries.items():
            times[name].append(_timed(lambda: _ffmpeg_banner(binary, path)))
    for name, values in times.items():
        print(f"{name:22s} median {statistics.median(values) * 1000:7.1f} ms per call "
              f"(min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f})")
    ratios = [c / i for c, i in zip(times["child"], times["in-process"])]
    print(f"child / in-process: median of per-round ratios {statistics.median(ratios):.0f}x "
          f"over {args.rounds} rounds")


if __name__ == "__main__":
    main()
