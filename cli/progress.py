"""Progress on stderr for the CLI's commands: tqdm bars that name the stage and keep moving."""
from __future__ import annotations

import sys
import threading
from typing import TextIO

# The longest label a bar shows (a stage, a status, or "upload"), so the bar does not shift as it changes.
_LABEL_WIDTH = len("canceled")
_NAME_WIDTH = 32


def short_name(name: str) -> str:
    return name if len(name) <= _NAME_WIDTH else name[: _NAME_WIDTH - 1] + "…"


class StageBar:
    """One file's bar: ``jfk.flac asr       12%|██      | 00:03``.

    The stage is part of the description (tqdm's postfix would print ``| , asr``), and the bar is
    redrawn every ``tick_s`` so its clock runs through a stage that reports no fraction for a while:
    a short file's ASR is one batch, so its fraction only moves when the batch is done. Disabled
    (tqdm's rule) when ``file`` is not a terminal."""

    def __init__(self, name: str, *, file: TextIO | None = None, disable: bool | None = None, tick_s: float = 0.5):
        from tqdm import tqdm

        self._name = short_name(name)
        self._lock = threading.Lock()
        self._bar = tqdm(total=100, desc=self._label(""), file=file or sys.stderr, disable=disable,
                         bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}")
        self._closed = threading.Event()
        self._ticker = None
        if not self._bar.disable:
            self._ticker = threading.Thread(target=self._tick, args=(tick_s,), name="progress-tick", daemon=True)
            self._ticker.start()

    def _label(self, stage: str) -> str:
        return f"{self._name} {stage:<{_LABEL_WIDTH}}"

    def update(self, stage: str, fraction: float) -> None:
        with self._lock:
            self._bar.n = round(min(1.0, max(0.0, fraction)) * 100, 1)
            self._bar.set_description_str(self._label(stage), refresh=False)
            self._bar.refresh()

    def _tick(self, tick_s: float) -> None:
        while not self._closed.wait(tick_s):
            with self._lock:
                self._bar.refresh()

    def __enter__(self) -> "StageBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        if self._ticker is not None:
            self._ticker.join()
        self._bar.close()


class UploadBar:
    """Bytes sent of one file: ``jfk.flac upload    45%|████    | 1.20G/2.61G 110MB/s``."""

    def __init__(self, name: str, *, file: TextIO | None = None, disable: bool | None = None):
        from tqdm import tqdm

        self._bar = tqdm(total=0, desc=f"{short_name(name)} {'upload':<{_LABEL_WIDTH}}", file=file or sys.stderr,
                         disable=disable, unit="B", unit_scale=True, unit_divisor=1024,
                         bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {rate_fmt}")

    def update(self, sent_bytes: int, total_bytes: int) -> None:
        self._bar.total = total_bytes
        self._bar.update(sent_bytes - self._bar.n)

    def close(self) -> None:
        self._bar.close()
