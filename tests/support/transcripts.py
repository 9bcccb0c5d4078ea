"""A small stored transcript (the shape core.jobs.complete takes) for tests that need a done job
without running a model."""

HELLO_ZH = {"text": "你好。", "language": "zh", "duration_ms": 1000, "segments": [
    {"start_ms": 0, "end_ms": 1000, "text": "你好。", "words": [{"start_ms": 0, "end_ms": 1000, "text": "你好"}]}]}
