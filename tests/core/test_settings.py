import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import PROFILES, Settings, SettingsError


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
        "TINGXIE_MODEL_ASR": "/models/paraformer",
        "TINGXIE_PRELOAD_MODELS": "false",
        "TINGXIE_DEVICE": "cuda:1",
        "TINGXIE_OPENAI_WAIT_S": "12.5",
    }
    s = Settings.from_env(env)
    assert s.data_dir == Path(tmp_path)
    assert s.events_url == "redis://127.0.0.1:6379/0"  # events follow a Redis broker
    assert s.max_upload_bytes == 10 * 1024**2 and s.job_lease_s == 30.0
    assert s.webhook_allow == ("127.0.0.1", "10.0.0.0/8")
    assert s.profile_options == {"asr": "/models/paraformer"}
    assert s.preload_models is False and s.device == "cuda:1" and s.openai_wait_s == 12.5


@pytest.mark.parametrize("name,value,says", [
    ("MAX_UPLOAD_MB", "4g", "MiB"),
    ("MAX_UPLOAD_MB", "-1", "> 0"),
    ("DEVICE", "gpu", "cpu, cuda or cuda:N"),
    ("PROFILE", "funasrr", "did you mean 'funasr'"),
    ("PRELOAD_MODELS", "ture", "true"),
    ("PORT", "80000", "1-65535"),
    ("WORKER_THREADS", "0", "> 0"),
    ("JOB_LEASE_S", "nan", "seconds"),
    ("BROKER_URL", "localhost:6379", "redis://"),
    ("DATABASE_URL", "mysql://x/y", "postgresql"),
    ("HOTWORD_FILE", "/no/such/file", "no such file"),
    ("WEBHOOK_ALLOW", "10.0.0.0/99", "CIDR"),
    ("FFMPEG", "/no/ffmpeg", "executable"),
    ("WORKER_PROFILES", "offline,funsar", "did you mean 'funasr'"),
    ("WORKER_PROFILES", ",", "profile names"),
    ("STORAGE_URL", "/srv/media", "s3://bucket"),
    ("STORAGE_URL", "s3://My_Bucket/x", "not an S3 bucket name"),
    ("S3_ENDPOINT_URL", "minio:9000", "http://"),
    ("S3_ADDRESSING_STYLE", "host", "auto, path, virtual"),
    ("MAX_ATTEMPTS", "0", "> 0"),
    ("JOB_TIME_FACTOR", "whisper=2", "'whisper' is not a profile"),
    ("JOB_TIME_FACTOR", "offline=fast", "seconds per second of audio"),
    ("STALL_S", "-5", "> 0"),
])
def test_a_bad_value_is_one_line_naming_the_variable_value_and_what_is_allowed(name, value, says):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({f"TINGXIE_{name}": value})
    assert len(caught.value.problems) == 1
    line = caught.value.problems[0]
    assert line.startswith(f"TINGXIE_{name}={value!r}: ") and says in line, line


def test_storage_and_worker_profiles(tmp_path):
    s = Settings.from_env({"TINGXIE_DATA_DIR": str(tmp_path), "TINGXIE_STORAGE_URL": "s3://media-bucket/tingxie/",
                           "TINGXIE_WORKER_PROFILES": "funasr, offline,funasr",
                           "TINGXIE_SCRATCH_DIR": str(tmp_path / "scratch")})
    assert s.storage_url == "s3://media-bucket/tingxie" and s.object_storage
    assert s.served_profiles == ("funasr", "offline")
    assert s.scratch_dir == s.work_dir == tmp_path / "scratch"
    plain = Settings(data_dir=tmp_path, profile="funasr")
    assert plain.served_profiles == ("funasr",) and not plain.object_storage
    assert plain.scratch_dir == tmp_path / "work"


def test_reliability_settings_and_what_they_derive(tmp_path):
    s = Settings.from_env({"TINGXIE_DATA_DIR": str(tmp_path), "TINGXIE_JOB_LEASE_S": "20", "TINGXIE_MAX_ATTEMPTS": "5",
                           "TINGXIE_JOB_TIME_BASE_S": "100", "TINGXIE_JOB_TIME_FACTOR": "funasr=0.5",
                           "TINGXIE_STALL_S": "120", "TINGXIE_DB_RETRY_S": "600", "TINGXIE_SPOOL_MAX_AGE_S": "7200"})
    assert (s.max_attempts, s.stall_s, s.db_retry_s, s.spool_max_age_s) == (5, 120.0, 600.0, 7200.0)
    assert s.resend_bound_s == 60.0  # three leases unless TINGXIE_RESEND_AFTER_S says otherwise
    assert Settings(data_dir=tmp_path, resend_after_s=15).resend_bound_s == 15
    assert s.time_limit_s("funasr", 600_000) == 100 + 0.5 * 600
    assert s.time_limit_s("offline", 600_000) == 100 + 1.0 * 600  # a profile not named: 1 s per second
    assert s.time_limit_s("offline", None) == 100 + s.max_duration_s  # duration unknown: the longest allowed
    assert Settings.from_env({"TINGXIE_DATA_DIR": str(tmp_path), "TINGXIE_JOB_TIME_FACTOR": "2"}).job_time_factor == {
        "offline": 2.0, "funasr": 2.0}


def test_every_problem_is_reported_at_once_and_misspelled_names_are_errors():
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"TINGXIE_PORT": "x", "TINGXIE_PROFLE": "funasr", "TINGXIE_SERVER": "http://h"})
    problems = caught.value.problems
    assert len(problems) == 2
    assert any("TINGXIE_PROFLE is not a tingxie setting; did you mean TINGXIE_PROFILE?" in p for p in problems)


COMMANDS = [["web", "--dev"], ["worker"], ["up"], ["gateway"], ["transcribe", "x.wav"], ["models", "list"]]


@pytest.mark.cli
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_stops_with_one_line_and_no_traceback(tmp_path, command):
    env = {"PATH": "/usr/bin:/bin", "TINGXIE_DATA_DIR": str(tmp_path), "TINGXIE_MAX_UPLOAD_MB": "4g"}
    proc = subprocess.run([sys.executable, "-m", "cli", *command], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "tingxie: TINGXIE_MAX_UPLOAD_MB='4g': expected a number of MiB, e.g. 4096"


@pytest.mark.cli
@pytest.mark.parametrize("command", [["worker"], ["up"], ["transcribe", "x.wav"], ["models", "list"]])
@pytest.mark.parametrize("variable,says", [
    ("TINGXIE_MODEL_ASR_MODEL=/m", "TINGXIE_MODEL_ASR_MODEL='/m': a known option"),
    ("TINGXIE_MODEL_BEAM_SIZE=five", "TINGXIE_MODEL_BEAM_SIZE='five': expected a whole number"),
    ("TINGXIE_MODEL_FP16=ture", "TINGXIE_MODEL_FP16='ture': expected one of"),
])
def test_model_options_are_checked_where_models_are_used(tmp_path, command, variable, says):
    name, value = variable.split("=", 1)
    env = {"PATH": "/usr/bin:/bin", "TINGXIE_DATA_DIR": str(tmp_path), name: value}
    proc = subprocess.run([sys.executable, "-m", "cli", *command], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("tingxie: " + says) and "Traceback" not in proc.stderr, proc.stderr


def test_every_setting_is_in_the_readmes_configuration_table():
    from core.settings import _VARIABLES

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = [var.name for var in _VARIABLES if f"TINGXIE_{var.name}`" not in table]
    assert missing == []


def test_to_env_gives_the_same_settings_back(tmp_path):
    """What a test service (tests/support/service.py) hands its processes: every setting, read back equal."""
    hotwords = tmp_path / "hotwords.txt"
    hotwords.write_text("达摩院\n")
    settings = Settings(
        data_dir=tmp_path / "data", database_url="postgresql+psycopg://u@h/db", broker_url="redis://h:6379/2",
        events_url="redis://h:6379/3", profile="funasr", worker_profiles=("offline", "funasr"),
        model_dir=tmp_path / "models", device="cuda:1", batch_seconds=33.3, max_upload_bytes=3 * 1024**2 + 512,
        max_duration_s=7200.5, job_lease_s=6.0, hotword_file=hotwords, max_hotwords=7, host="0.0.0.0", port=8123,
        gateway_port=10096, webhook_secret="s3cret", webhook_allow=("10.0.0.0/8", "hooks.local"),
        preload_models=False, worker_threads=3, openai_wait_s=12.5, storage_url="s3://bucket/prefix",
        s3_endpoint_url="http://minio:9000", s3_region="eu-1", s3_access_key_id="a", s3_secret_access_key="b",
        s3_addressing_style="path", scratch_dir=tmp_path / "scratch", auth="required",
        allowed_origins=("https://asr.example.com",), trusted_proxies=1, session_hours=0.5,
        rate_limit="20/second;1000/hour", upload_rate_limit="off", tenant_max_jobs=9, tenant_inflight=2,
        gateway_tenant="gw", gateway_require_token=True, request_idle_timeout_s=2.0, max_attempts=4,
        resend_after_s=30.0, job_time_base_s=60.0, job_time_factor={"offline": 2.0, "funasr": 0.5},
        stall_s=90.0, db_retry_s=5.0, spool_max_age_s=3600.0, profile_options={"beam_size": "3"},
    )
    env = settings.to_env()
    assert all(key.startswith("TINGXIE_") and isinstance(value, str) for key, value in env.items())
    assert Settings.from_env(env) == settings
    assert Settings.from_env(Settings(data_dir=tmp_path).to_env()) == Settings(data_dir=tmp_path)
