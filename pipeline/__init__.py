"""tingxie's transcription pipeline: a plain library, media file in, typed transcript out.

``transcribe(path, options, engine, work_dir=...)`` runs decode -> VAD -> ASR -> (speakers) ->
punctuation -> ITN with the engine a profile loads (``pipeline.profiles.load_engine``). Importing the package
loads no model runtime; that happens when an engine is loaded.
"""
from pipeline.run import transcribe

__all__ = ["transcribe"]
