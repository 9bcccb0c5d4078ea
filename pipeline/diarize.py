"""Who spoke when: speaker embeddings over the speech, clustered, and each word labelled.

Windows. Each stretch of speech VAD found (each part of a span that merged several) is cut into
windows of the model's ``window_ms`` (1.6 s for GE2E, 1.5 s for CAM++, the lengths they were
trained on) every half window; the last one ends where the stretch ends. A stretch shorter than
a window is one window of its own when it lasts at least ``MIN_WINDOW_MS``; shorter ones (a
cough, a "yes") get no embedding, and their words take the nearest window's speaker.

Clustering. scikit-learn's agglomerative clustering, average linkage on cosine distance, over the
windows' embeddings. With ``num_speakers`` the tree is cut at that many clusters. Otherwise the
number is estimated with a distance threshold: clusters merge while the two nearest are closer
than the model's ``same_speaker_distance``. (Spectral clustering's eigengap, FunASR's estimate,
needs many windows: FunASR calls anything under 20 windows one speaker, and a 20 s file has about
that many.) ``min_speakers``/``max_speakers`` then bound the estimate, the tree cut again at the
nearer bound. A file with one window has one speaker.

Only windows of at least ``MIN_CLUSTERED_MS`` are clustered: an embedding of under a second of
speech lies far even from its own speaker's (on jfk.flac, "ask not" alone is 0.45 from the rest,
where two different voices are 0.5 apart), so each shorter window joins the cluster whose centre
is nearest and cannot make a speaker of its own. Clustering's memory is quadratic in the windows,
so at most ``MAX_CLUSTERED_WINDOWS`` (about 27 minutes of speech at 1.6 s windows) are clustered,
spread evenly over the file; every other window joins the cluster whose centre is nearest.

Words. A word takes the speaker of the windows it overlaps, each counted by how much of the word
it covers; a word no window overlaps takes the nearest window's. Speakers are named ``S1``,
``S2``... in the order they first speak. The pipeline then cuts sentences where the speaker
changes (:mod:`pipeline.run`).
"""
from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Callable, Sequence

from pipeline.errors import EngineMissingError

if TYPE_CHECKING:
    import numpy as np

    from pipeline.audio import PcmFile
    from pipeline.stages import SpeakerModel, SpeechSpan
    from pipeline.types import TranscribeOptions

# Windows start this many times per window length. More (a finer hop) placed no change of
# speaker inside continuous speech any closer on tests/support/speaker_turns.TWO_VOICES_CLOSE: a
# window's embedding leans to whichever voice it ends with, by how much varies.
HOPS_PER_WINDOW = 2
# Stretches of speech shorter than this get no embedding of their own (too little voice to tell).
MIN_WINDOW_MS = 500
# Windows shorter than this (whole stretches between 0.5 and 1 s) are too noisy to shape the
# clusters: each joins the cluster whose centre is nearest once the longer windows are clustered.
MIN_CLUSTERED_MS = 1000
# At most this many windows go through agglomerative clustering (its memory grows with the square).
MAX_CLUSTERED_WINDOWS = 2000
# Windows embedded per call to the model (progress is reported between calls).
EMBED_BATCH = 64


def windows(regions: Sequence[tuple[int, int]], window_ms: int) -> list[tuple[int, int]]:
    """``(start_ms, end_ms)`` windows over the speech regions, in time order (see the module doc)."""
    hop_ms = max(1, window_ms // HOPS_PER_WINDOW)
    out: list[tuple[int, int]] = []
    for start, end in sorted(regions):
        length = end - start
        if length < MIN_WINDOW_MS:
            continue
        if length <= window_ms:
            out.append((start, end))
            continue
        at = start
        while at + window_ms < end:
            out.append((at, at + window_ms))
            at += hop_ms
        out.append((end - window_ms, end))
    return out


def cluster(
    embeddings: "np.ndarray",
    distance: float,
    *,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
) -> "np.ndarray":
    """A cluster number per row of L2-normalised ``embeddings`` (see the module doc)."""
    # numpy and scikit-learn (the diarize extra) only when a job asks for speakers
    import numpy as np
    from sklearn.cluster import AgglomerativeClustering

    n = len(embeddings)
    if n < 2:
        return np.zeros(n, dtype=int)
    if n > MAX_CLUSTERED_WINDOWS:
        chosen = np.linspace(0, n - 1, MAX_CLUSTERED_WINDOWS).round().astype(int)
        labels = cluster(embeddings[chosen], distance, num_speakers=num_speakers,
                         min_speakers=min_speakers, max_speakers=max_speakers)
        return nearest_centre(embeddings, embeddings[chosen], labels)

    def fit(**how) -> "np.ndarray":
        return AgglomerativeClustering(metric="cosine", linkage="average", **how).fit_predict(embeddings)

    if num_speakers is not None:
        return fit(n_clusters=min(num_speakers, n))
    labels = fit(n_clusters=None, distance_threshold=distance)
    found = int(labels.max()) + 1
    low = min(min_speakers or 1, n)
    high = min(max_speakers or n, n)
    if not low <= found <= high:
        labels = fit(n_clusters=min(max(found, low), high))
    return labels


def nearest_centre(embeddings: "np.ndarray", clustered: "np.ndarray", labels: "np.ndarray") -> "np.ndarray":
    """For each row of ``embeddings``, the cluster (of ``clustered``, labelled ``labels``) whose
    centre, the normalised mean of its rows, is nearest in cosine distance."""
    # numpy only once audio is processed: importing the pipeline loads none (it comes with a profile's extra)
    import numpy as np

    centres = np.stack([clustered[labels == k].mean(axis=0) for k in range(int(labels.max()) + 1)])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True).clip(1e-12)
    return np.argmax(embeddings @ centres.T, axis=1)


def label_words(
    word_spans: Sequence[tuple[int, int]],
    window_spans: Sequence[tuple[int, int]],
    window_labels: Sequence[int],
) -> list[int]:
    """The cluster of each word (``(start_ms, end_ms)``, in time order), from the windows' (at
    least one, in time order): the label covering most of the word, counting every window over
    it; a word no window overlaps takes the nearest window's."""
    starts = [w[0] for w in window_spans]
    result: list[int] = []
    for start, end in word_spans:
        votes: dict[int, int] = {}
        # Windows are a few seconds long at most: look back far enough to find every overlap.
        for i in range(bisect.bisect_left(starts, start - 10_000), bisect.bisect_right(starts, end)):
            w_start, w_end = window_spans[i]
            overlap = min(max(end, start + 1), w_end) - max(start, w_start)  # a 0 ms word counts as 1 ms
            if overlap > 0:
                votes[window_labels[i]] = votes.get(window_labels[i], 0) + overlap
        if votes:
            result.append(max(votes, key=lambda k: (votes[k], -k)))
            continue
        middle = (start + end) / 2
        nearest = min(
            range(len(window_spans)),
            key=lambda i: max(window_spans[i][0] - middle, middle - window_spans[i][1], 0),
        )
        result.append(window_labels[nearest])
    return result


def speaker_ids(word_clusters: Sequence[int]) -> list[str]:
    """``S1``, ``S2``... in order of first appearance."""
    names: dict[int, str] = {}
    for k in word_clusters:
        if k not in names:
            names[k] = f"S{len(names) + 1}"
    return [names[k] for k in word_clusters]


def diarize(
    pcm: "PcmFile",
    spans: Sequence["SpeechSpan"],
    word_spans: Sequence[tuple[int, int]],
    model: "SpeakerModel",
    options: "TranscribeOptions",
    on_progress: Callable[[float], None] | None = None,
) -> list[str]:
    """The speaker (``S1``...) of each word. ``spans``: the speech VAD found; ``word_spans``: the
    words' ``(start_ms, end_ms)`` in time order; ``options``: the speaker counts asked for.
    ``on_progress`` gets 0..1 as windows are embedded."""
    # numpy only once audio is processed: importing the pipeline loads none (it comes with a profile's extra)
    import numpy as np

    try:
        # scikit-learn (the diarize extra) only when a job asks for speakers: missing, the job says what to install
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise EngineMissingError(
            "Speaker labels need scikit-learn: pip install 'tingxie[diarize]'", detail=repr(exc)
        ) from exc
    if not word_spans:
        return []
    regions = [part for span in spans for part in (span.parts or ((span.start_ms, span.end_ms),))]
    cuts = windows(regions, model.window_ms)
    if not cuts:
        return ["S1"] * len(word_spans)
    embedded: list[np.ndarray] = []
    for first in range(0, len(cuts), EMBED_BATCH):
        batch = cuts[first:first + EMBED_BATCH]
        embedded.append(model.embed([pcm.read(start, end) for start, end in batch]))
        if on_progress is not None:
            on_progress(min(1.0, (first + len(batch)) / len(cuts)))
    embeddings = np.concatenate(embedded)
    counts = dict(num_speakers=options.num_speakers, min_speakers=options.min_speakers,
                  max_speakers=options.max_speakers)
    full = [i for i, (start, end) in enumerate(cuts) if end - start >= MIN_CLUSTERED_MS]
    if full and len(full) < len(cuts):
        labels = nearest_centre(
            embeddings, embeddings[full], cluster(embeddings[full], model.same_speaker_distance, **counts)
        )
    else:
        labels = cluster(embeddings, model.same_speaker_distance, **counts)
    return speaker_ids(label_words(word_spans, cuts, [int(k) for k in labels]))
