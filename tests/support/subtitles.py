"""What every subtitle export must satisfy, checked cue by cue (used by the core and pipeline tests)."""
from __future__ import annotations

from contract import Transcript
from core.export import Cue, SubtitleLimits, build_cues
from pipeline.text import join_words


def assert_readable(data: Transcript, limits: SubtitleLimits = SubtitleLimits()) -> list[Cue]:
    """Every cue within ``limits``, in time order, inside the audio, one speaker each, its lines
    whole words of one sentence; the lines, joined, give the transcript's text. Returns the cues."""
    cues = build_cues(data, limits)
    duration_ms = data.duration_ms
    previous_end = 0
    for i, cue in enumerate(cues):
        assert 1 <= len(cue.lines) <= limits.max_lines, cue
        assert 0 <= previous_end <= cue.start_ms < cue.end_ms <= duration_ms, (cue, previous_end)
        assert cue.end_ms - cue.start_ms <= limits.max_cue_s * 1000, cue
        next_start = cues[i + 1].start_ms if i + 1 < len(cues) else duration_ms
        assert cue.end_ms - cue.start_ms >= min(limits.min_cue_s * 1000, next_start - cue.start_ms), cue
        previous_end = cue.end_ms
    for index, segment in enumerate(data.segments):
        width = limits.line_chars(segment.text)
        words = segment.words
        taken = 0
        for cue in (cue for cue in cues if cue.segment == index):
            speakers = set()
            for n, line in enumerate(cue.lines):
                label = len(f"[{cue.speaker}] ") if cue.speaker and n == 0 else 0
                assert len(line) + label <= width, (line, width)
                # The sentence's words, in order, fill its lines exactly: no line ends inside a word.
                run: list[str] = []
                while join_words(run) != line:
                    assert taken < len(words) and len(join_words(run)) < len(line), (line, run)
                    run.append(words[taken].text)
                    speakers.add(words[taken].speaker or segment.speaker)
                    taken += 1
            assert speakers == {cue.speaker}, cue
        assert taken == len(words), segment
    assert join_words(line for cue in cues for line in cue.lines) == data.text
    return cues
