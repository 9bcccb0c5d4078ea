"""Silero VAD on real speech, and how regions become spans."""
from __future__ import annotations

from pipeline.audio import PcmFile, decode
from pipeline.stages import SpeechSpan, StreamingVad, VadModel
from pipeline.vad_silero import SileroVad, VadOptions, _shape_spans


def test_finds_speech_in_jfk_with_silence_around(speech_dir, ffmpeg, make_media, tmp_path):
    padded = make_media("padded.wav", "-i", str(speech_dir / "jfk.flac"), "-af", "adelay=5000:all=1,apad=pad_dur=5",
                        "-ac", "1", "-ar", "16000")
    decode(padded, tmp_path / "p.s16le", ffmpeg=ffmpeg)
    vad = SileroVad()
    assert isinstance(vad, VadModel)
    seen = []
    spans = vad.speech_spans(PcmFile(tmp_path / "p.s16le"), on_progress=seen.append)
    assert spans and seen[-1] == 1.0
    assert 4_500 <= spans[0].start_ms <= 5_300  # speech starts 5 s in (padding aside)
    assert 15_000 <= spans[-1].end_ms <= 16_500  # and ends before the 5 s of trailing silence
    assert all(s.read_ms <= 30_000 for s in spans)


def test_short_gaps_merge_long_gaps_split():
    opt = VadOptions(speech_pad_ms=0, span_pad_ms=0, merge_gap_ms=2_000, max_span_ms=30_000)
    spans = _shape_spans([(0, 1_000), (1_500, 3_000), (6_000, 7_000)], 10_000, opt)
    assert spans == [SpeechSpan(0, 3_000), SpeechSpan(6_000, 7_000)]


def test_spans_never_exceed_max_span():
    opt = VadOptions(speech_pad_ms=0, span_pad_ms=0, merge_gap_ms=2_000, max_span_ms=30_000)
    regions = [(i * 5_000, i * 5_000 + 4_500) for i in range(20)]  # 100 s of talk with short pauses
    spans = _shape_spans(regions, 100_000, opt)
    assert all(s.duration_ms <= 30_000 for s in spans)
    assert spans[0].start_ms == 0 and spans[-1].end_ms == 99_500
    long_one = _shape_spans([(0, 75_000)], 80_000, opt)  # no pause at all: cut into equal parts
    assert [s.duration_ms for s in long_one] == [25_000, 25_000, 25_000]


def test_padding_stays_inside_the_file_and_between_neighbours():
    opt = VadOptions(speech_pad_ms=400, span_pad_ms=400, merge_gap_ms=0, max_span_ms=30_000)
    spans = _shape_spans([(100, 1_000), (1_300, 2_000), (9_800, 9_900)], 10_000, opt)
    assert spans == [SpeechSpan(0, 1_150), SpeechSpan(1_150, 2_400), SpeechSpan(9_400, 10_000)]


def test_the_audio_asr_reads_reaches_further_than_the_speech_parts():
    """A span reaches ``span_pad_ms`` out at its outer edges (what Whisper reads), its parts only
    ``speech_pad_ms`` (where speaker windows are cut); neither past halfway to a neighbour."""
    opt = VadOptions(speech_pad_ms=200, span_pad_ms=500, merge_gap_ms=2_000, max_span_ms=30_000)
    spans = _shape_spans([(1_000, 2_000), (2_500, 4_000), (4_600, 5_000), (9_000, 9_800)], 10_000, opt)
    assert spans == [SpeechSpan(500, 5_500), SpeechSpan(8_500, 10_000)]
    assert spans[0].parts == ((800, 2_200), (2_300, 4_200), (4_400, 5_200))
    assert spans[1].parts == ((8_800, 10_000),)
    long_one = _shape_spans([(1_000, 61_000)], 70_000, opt)  # cut into equal parts, touching inside
    assert [(s.start_ms, s.end_ms) for s in long_one] == [(500, 20_834), (20_834, 41_168), (41_168, 61_500)]
    assert [s.parts for s in long_one] == [((800, 20_834),), ((20_834, 41_168),), ((41_168, 61_200),)]


def test_spans_come_out_while_the_file_is_still_being_read(speech_dir, ffmpeg, make_media, tmp_path):
    """A streaming VAD (the pipeline runs it beside ASR): on two minutes of real speech the first
    span is handed out before the scores reach the end of the file, and the spans are those the
    whole-file call returns (issue 25, P1)."""
    long = make_media("long.wav", "-stream_loop", "10", "-i", str(speech_dir / "jfk.flac"),
                      "-af", "apad=pad_dur=1", "-t", "120", "-ac", "1", "-ar", "16000")
    decode(long, tmp_path / "l.s16le", ffmpeg=ffmpeg)
    pcm = PcmFile(tmp_path / "l.s16le")
    vad = SileroVad(VadOptions(chunk_windows=100))
    assert isinstance(vad, StreamingVad)
    seen: list[float] = []
    at_each_span = [seen[-1] if seen else 0.0 for _ in vad.iter_speech_spans(pcm, seen.append)]
    assert len(at_each_span) >= 3 and at_each_span[0] < 0.5 and seen[-1] == 1.0
    assert list(vad.iter_speech_spans(pcm)) == vad.speech_spans(pcm)


def test_long_pauses_inside_a_span_are_cut_down_so_a_window_holds_more_speech():
    """ASR reads at most ``max_pause_ms`` of a pause between two parts (faster-whisper's batched
    pipeline leaves 800 ms between stretches of speech): a 30 s window then holds 30 s of what is
    read, the span itself may reach further on the file."""
    opt = VadOptions(speech_pad_ms=200, span_pad_ms=500, merge_gap_ms=2_000, max_pause_ms=400, max_span_ms=30_000)
    regions = [(i * 6_400, i * 6_400 + 4_500) for i in range(10)]  # 4.5 s of talk, then 1.9 s of silence
    spans = _shape_spans(regions, 64_000, opt)
    assert all(s.read_ms <= 30_000 for s in spans)
    assert spans[0].duration_ms > 30_000  # more than 30 s of the file in one window
    first = spans[0]
    assert first.parts[:2] == ((0, 4_700), (6_200, 11_100))
    assert first.cuts[0] == (4_900, 6_000)  # 1,500 ms between the parts: 400 ms of it kept
    assert len(first.cuts) == len(first.parts) - 1
    no_cuts = _shape_spans(regions, 64_000, VadOptions(speech_pad_ms=200, span_pad_ms=500, max_pause_ms=None))
    assert all(not s.cuts for s in no_cuts) and len(no_cuts) > len(spans)
