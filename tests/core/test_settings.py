from pathlib import Path

from core.settings import Settings


def test_embedded_defaults(tmp_path):
    s = Settings(data_dir=tmp_path)
    assert s.database_url == f"sqlite:///{tmp_path / 'tingxie.db'}"
    assert s.embedded_broker and s.events_url == ""
    assert s.model_dir == tmp_path / "models"


def test_from_env_reads_everything_in_one_place(tmp_path):
    env = {
        "TINGXIE_DATA_DIR": str(tmp_path),
        "TINGXIE_DATABASE_URL": "postgresql+psycopg://u@h/db",
        "TINGXIE_BROKER_URL": "redis://127.0.0.1:6379/0",
        "TINGXIE_MAX_UPLOAD_MB": "10",
        "TINGXIE_JOB_LEASE_S": "30",
        "TINGXIE_WEBHOOK_ALLOW": "127.0.0.1, 10.0.0.0/8",
        "TINGXIE_MODEL_ASR_MODEL": "/models/paraformer",
        "TINGXIE_PRELOAD_MODELS": "false",
    }
    s = Settings.from_env(env)
    assert s.data_dir == Path(tmp_path)
    assert s.events_url == "redis://127.0.0.1:6379/0"  # events follow a Redis broker
    assert s.max_upload_bytes == 10 * 1024**2 and s.job_lease_s == 30.0
    assert s.webhook_allow == ("127.0.0.1", "10.0.0.0/8")
    assert s.profile_options == {"asr_model": "/models/paraformer"}
    assert s.preload_models is False
