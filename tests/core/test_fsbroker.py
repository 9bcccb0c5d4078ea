"""The embedded broker's transport (core.fsbroker): a message is seen whole or not at all, and a
message file that does not decode does not end the consumer's loop."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from queue import Empty

import pytest
from kombu import Connection

from core import fsbroker
from core.queue import make_celery
from core.settings import Settings


def _connection(folder: Path) -> Connection:
    """Messages in ``folder``; exchanges declared beside it (kombu's default is ``./control``, in
    the working directory)."""
    control = folder.with_name(folder.name + "-control")
    folder.mkdir(exist_ok=True)
    control.mkdir(exist_ok=True)
    return Connection(transport=fsbroker.Transport, transport_options={
        "data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False,
        "control_folder": str(control)})


def test_the_embedded_broker_uses_this_transport(tmp_path):
    with make_celery(Settings(data_dir=tmp_path)).connection_for_write() as connection:
        assert isinstance(connection.default_channel, fsbroker.Channel)


def test_a_message_is_seen_only_once_it_is_whole(tmp_path, monkeypatch):
    queue = tmp_path / "queue"
    producer, consumer = _connection(queue), _connection(queue)
    seen_while_writing = []
    replace = os.replace

    def looking_before_the_rename(src, dst):
        # The bytes are on disk under their partial name: a consumer looking now sees no message.
        assert Path(src).read_bytes()
        seen_while_writing.append((consumer.default_channel._size("jobs"), sorted(os.listdir(queue))))
        with pytest.raises(Empty):
            consumer.default_channel._get("jobs")
        replace(src, dst)

    monkeypatch.setattr(fsbroker.os, "replace", looking_before_the_rename)
    producer.default_channel._put("jobs", {"body": "job-1"})
    monkeypatch.undo()
    [(size, names)] = seen_while_writing
    assert size == 0 and len(names) == 1 and names[0].endswith(".partial")
    assert consumer.default_channel._get("jobs") == {"body": "job-1"}
    assert os.listdir(queue) == []
    producer.release()
    consumer.release()


def test_a_message_cut_short_is_dropped_and_the_consumer_goes_on(tmp_path, caplog):
    # What kombu's own transport leaves for an instant (created, not yet written), and a file cut short.
    queue = tmp_path / "queue"
    connection = _connection(queue)
    (queue / "1_a.jobs.msg").write_bytes(b"")
    (queue / "2_b.jobs.msg").write_bytes(b'{"body": "jo')
    with caplog.at_level(logging.WARNING, logger="core.fsbroker"), pytest.raises(Empty):
        connection.default_channel._get("jobs")
    connection.default_channel._put("jobs", {"body": "job-2"})
    assert connection.default_channel._get("jobs") == {"body": "job-2"}
    assert [r.getMessage().startswith("dropped a message on jobs that does not decode") for r in caplog.records] == [True, True]
    assert os.listdir(queue) == []
    connection.release()


def test_messages_go_through_a_queue_in_order(tmp_path):
    with _connection(tmp_path / "queue") as connection:
        jobs = connection.SimpleQueue("jobs")
        for i in range(3):
            jobs.put({"n": i})
        got = []
        for _ in range(3):
            message = jobs.get(timeout=5)
            got.append(message.payload["n"])
            message.ack()
        jobs.close()
    assert got == [0, 1, 2]
