"""Settings' profile options reach the pipeline typed, and a bad one is refused before any model loads."""
from __future__ import annotations

import pytest

from pipeline.errors import ProfileOptionsError
from pipeline.funasr.profile import FunasrOptions
from pipeline.offline import OfflineOptions
from tests.conftest import make_settings
from worker.engines import check_profile_options, load_engine_for


def test_settings_options_become_each_profiles_typed_options(tmp_path):
    settings = make_settings(tmp_path, profile_options={"asr": "/models/my-paraformer", "beam_size": "3"})
    assert check_profile_options(settings) == {
        "offline": OfflineOptions(beam_size=3),
        "funasr": FunasrOptions(asr="/models/my-paraformer"),
    }


@pytest.mark.parametrize("options,named", [
    ({"asr_model": "/models/x"}, "'asr_model'"),  # the name the README used to document
    ({"beam_size": "many"}, "beam_size='many'"),
])
def test_a_bad_setting_stops_loading_before_any_model(tmp_path, options, named):
    settings = make_settings(tmp_path, profile_options=options)
    with pytest.raises(ProfileOptionsError, match=named):
        check_profile_options(settings)
    with pytest.raises(ProfileOptionsError, match=named):
        load_engine_for(settings, "offline")
    assert not (tmp_path / "data" / "cache").exists()  # nothing was prepared
