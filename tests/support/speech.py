"""Where the real speech lives: tests/data/speech, inside the repository (its README says where each
recording comes from, its licence and its reference text). Tests reach it through the
``speech_dir``/``speech_path`` fixtures, benches through :data:`SPEECH_DIR`."""
from __future__ import annotations

from pathlib import Path

SPEECH_DIR = Path(__file__).resolve().parents[1] / "data" / "speech"

# The reference text of each recording (tests/data/speech/README.md).
REFERENCE = {
    "asr_example": "欢迎大家来体验达摩院推出的语音识别模型",
    "jfk": "And so my fellow Americans, ask not what your country can do for you, "
           "ask what you can do for your country.",
    "hotwords": "Then you go into your ComfyUI folder again in the ComfyUI",
}
