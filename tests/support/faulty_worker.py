"""A tingxie command (usually ``worker``) with faults injected into its model sets, for the fault
tests and ``bench/faults.py`` only; the product has no such hooks:

    python -m tests.support.faulty_worker [--load-delay S] [--die-in-load] [--die-in-asr] -- worker ...

Before the command runs, each built-in profile is registered again through the profile registry's
public seam (``pipeline.profiles.register_profile``), wrapped so that loading it sleeps ``S``
seconds first (a slow model load: FunASR's large models on a busy machine), or kills its process
half a second into the load, or so that its ASR kills its process on the first batch (a poison
job). Prefork pool processes are forked from this process, so they inherit the wrapped profiles.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time

from pipeline.errors import EngineMissingError
from pipeline.profiles import available_profiles, get_profile, register_profile
from pipeline.stages import Profile

log = logging.getLogger("tingxie.faults")


def _die(why: str) -> None:
    log.warning("fault injected: %s; killing pool process %d", why, os.getpid())
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class _DyingAsr:
    def __init__(self, asr):
        self._asr = asr
        self.supports_hotwords = asr.supports_hotwords

    def recognize(self, segments, **kwargs):
        _die("ASR batch")
        return self._asr.recognize(segments, **kwargs)


def wrap(profile: Profile, *, load_delay_s: float, die_in_load: bool, die_in_asr: bool) -> Profile:
    def load(config):
        if die_in_load:
            time.sleep(0.5)
            _die("model load")
        if load_delay_s:
            log.warning("fault injected: the model load sleeps %.1f s", load_delay_s)
            time.sleep(load_delay_s)
        engine = profile.load(config)
        if die_in_asr:
            engine.asr = _DyingAsr(engine.asr)
        return engine

    return Profile(options=profile.options, load=load)


def main(argv: list[str]) -> int:
    if "--" not in argv:
        raise SystemExit(__doc__)
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="faulty_worker")
    parser.add_argument("--load-delay", type=float, default=0.0)
    parser.add_argument("--die-in-load", action="store_true")
    parser.add_argument("--die-in-asr", action="store_true")
    args = parser.parse_args(argv[:split])
    for name in available_profiles():
        try:
            profile = get_profile(name)
        except EngineMissingError:  # not installed here: nothing to wrap
            continue
        register_profile(name, wrap(profile, load_delay_s=args.load_delay,
                                    die_in_load=args.die_in_load, die_in_asr=args.die_in_asr))
    from cli import main as tingxie

    return tingxie(argv[split + 1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
