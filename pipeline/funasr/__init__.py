"""The ``funasr`` profile: FunASR's model set (FSMN-VAD, Paraformer, CT-Transformer) with
tingxie's own glue around funasr's networks.

``profile`` declares the profile (its model catalog and loader); ``vad`` (with ``detect``, the
compiled end-point detection), ``asr`` (with ``cif``, the CIF scans) and ``punc`` hold the stage
objects; ``pool`` runs VAD, punctuation and ITN in CPU helper processes. Importing the package,
or ``profile``, loads neither torch nor funasr.
"""
