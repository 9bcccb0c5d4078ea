"""``GET /api/v1/jobs/<id>/events``: a snapshot, then the job's events in order ending with its
end, for every watcher, on the embedded default (database) and on Redis pub/sub."""
from __future__ import annotations

import json
import threading

import pytest
import websocket
from sqlalchemy import select

from core.db import make_engine, make_sessionmaker, session_scope
from core.models import JobEvent
from tests.support.wsclient import close_ws

pytestmark = pytest.mark.slow


def ws_url(service, job_id: str) -> str:
    return f"ws://{service.settings.host}:{service.settings.port}/api/v1/jobs/{job_id}/events"


def watch(url: str, timeout_s: float = 300) -> tuple[list[dict], int | None]:
    """Every message until the server closes, and the close code."""
    ws = websocket.create_connection(url, timeout=timeout_s)
    messages = []
    try:
        while True:
            opcode, data = ws.recv_data(control_frame=False)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                return messages, code
            messages.append(json.loads(data))
    except websocket.WebSocketConnectionClosedException:
        return messages, None
    finally:
        close_ws(ws)


def db_history(settings, job_id: str) -> list[tuple[int, str]]:
    engine = make_engine(settings.database_url)
    with session_scope(make_sessionmaker(engine)) as session:
        rows = session.execute(select(JobEvent.id, JobEvent.type).where(JobEvent.job_id == job_id)
                               .order_by(JobEvent.id)).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def test_watchers_get_snapshot_then_every_event_in_order_ending_with_done(live_service, any_settings, speech_path):
    # No worker at first, so every watcher connects while the job is queued and sees it all.
    service = live_service(any_settings, workers=0)
    job = service.submit(speech_path("jfk.flac"), language="en")
    url = ws_url(service, job["id"])
    results: list = [None] * 3
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, watch(url))) for i in range(3)]
    for thread in threads:
        thread.start()
    service.start_worker()
    for thread in threads:
        thread.join(300)
    history = db_history(service.settings, job["id"])
    assert history[-1][1] == "done"
    for messages, code in results:
        assert code == 1000
        snapshot, events = messages[0], messages[1:]
        assert snapshot["type"] == "snapshot" and snapshot["job"]["id"] == job["id"]
        assert snapshot["job"]["status"] == "queued"
        # Exactly the committed events after the snapshot, in order, ending with done.
        assert history[0][1] == "queued"  # covered by the snapshot
        assert [(e["id"], e["type"]) for e in events] == history[1:]
        types = [e["type"] for e in events]
        assert types[0] == "running" and types[-1] == "done" and "progress" in types
        progress = [e["data"]["progress"] for e in events if e["type"] == "progress"]
        assert progress == sorted(progress) and all(0 <= p <= 1 for p in progress)
        assert {e["data"].get("stage") for e in events if e["type"] == "progress"} - {None}
        done = events[-1]
        assert done["links"]["transcript"] == f"/api/v1/jobs/{job['id']}/transcript"


def test_a_late_watcher_gets_the_final_state(shared_service, speech_path):
    service = shared_service  # only submits and reads: the session's warm service
    job = service.submit(speech_path("asr_example.wav"), hotwords="达摩院")
    service.wait(job["id"])
    messages, code = watch(ws_url(service, job["id"]))
    assert code == 1000
    assert [m["type"] for m in messages] == ["snapshot", "done"]
    assert messages[0]["job"]["status"] == "done" and messages[0]["job"]["progress"] == 1.0
    assert messages[1]["links"]["transcript"].endswith("/transcript")


def test_unknown_job_is_an_error_then_a_close(live_service):
    service = live_service(workers=0)
    messages, code = watch(ws_url(service, "0" * 32))
    assert messages == [{"type": "error", "error": {"code": "not_found", "message": f"no job {'0' * 32}"}}]
    assert code == 1008


def test_the_server_ends_the_connection_after_the_close(live_service):
    """A client that waits for the server to close the TCP connection, as RFC 6455 asks (the
    ``websockets`` package does), is not left waiting on the development server."""

    from websockets.exceptions import ConnectionClosedError
    from websockets.sync.client import connect

    service = live_service(workers=0)
    with connect(ws_url(service, "0" * 32), close_timeout=30, ping_interval=None) as ws:
        assert json.loads(ws.recv())["error"]["code"] == "not_found"
        # Raises once the server has closed (the close frames, then TCP); a server that waited for
        # the client instead would leave recv to time out (TimeoutError, a hang guard).
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=60)
    assert ws.close_code == 1008  # the server's close, after the error: not an idle timeout's


@pytest.mark.live
def test_the_readmes_events_example_runs_to_the_close(live_service):
    """The README's Python example, as written: it prints each message and ends when the server
    closes (websocket-client's recv() then returns '', which is not JSON)."""
    import contextlib
    import io
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"```python\n(import json, websocket.*?)```", readme, re.S)
    service = live_service(workers=0)
    code = example.replace("ws://127.0.0.1:8000", f"ws://{service.settings.host}:{service.settings.port}")
    code = code.replace("JOB_ID", "0" * 32).replace('header=["Authorization: Bearer tx_…"]', "header=[]")
    printed = io.StringIO()
    example_globals: dict = {}
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), example_globals)
    close_ws(example_globals["ws"])  # the example ends with the script; here the test process goes on
    assert "not_found" in printed.getvalue()
