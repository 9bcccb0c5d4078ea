"""Settings' profile options reach the pipeline typed, and a bad one is refused before any model loads."""
from __future__ import annotations

import pytest

from core.settings import SettingsError
from pipeline.funasr.profile import FunasrOptions
from pipeline.offline import OfflineOptions
from tests.support.settings import make_settings
from worker.engines import check_profile_options, load_engine_for


def test_settings_options_become_each_profiles_typed_options(tmp_path):
    settings = make_settings(tmp_path, profile_options={"asr": "/models/my-paraformer", "beam_size": "3"})
    assert check_profile_options(settings) == {
        "offline": OfflineOptions(beam_size=3),
        "funasr": FunasrOptions(asr="/models/my-paraformer"),
    }


@pytest.mark.parametrize("options,named", [
    ({"asr_model": "/models/x"}, "TINGXIE_MODEL_ASR_MODEL='/models/x': a known option"),  # the name the README used to document
    ({"beam_size": "many"}, "TINGXIE_MODEL_BEAM_SIZE='many': expected a whole number"),
])
def test_a_bad_setting_stops_loading_before_any_model(tmp_path, options, named):
    """Named as the environment variable the operator set, like every other setting."""
    settings = make_settings(tmp_path, profile_options=options)
    with pytest.raises(SettingsError, match=named):
        check_profile_options(settings)
    with pytest.raises(SettingsError, match=named):
        load_engine_for(settings, "offline")
    assert not (tmp_path / "data" / "cache").exists()  # nothing was prepared


def test_channel_options_reach_the_pipeline_and_the_caps_agree():
    from core.options import MAX_CHANNELS, JobOptions
    from pipeline.types import MAX_CHANNELS as PIPELINE_MAX_CHANNELS
    from worker.engines import transcribe_options

    options = transcribe_options(JobOptions(channels="separate", channel_names=("agent", "customer")))
    assert options.channels == "separate" and options.channel_names == ("agent", "customer")
    assert options.channel is None
    assert transcribe_options(JobOptions()).channels == "mix"
    assert MAX_CHANNELS == PIPELINE_MAX_CHANNELS
