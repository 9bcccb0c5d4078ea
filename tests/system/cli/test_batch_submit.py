"""``tingxie submit DIR/`` against a running web tier (no worker: the batch's jobs stay queued): a
run interrupted after two uploads is resumed by the same command, and the batch ends up with each
file exactly once; the batch's jobs keep the options given."""
from __future__ import annotations

import argparse
import shutil

import pytest

from cli import batch as batch_cli
from cli.client import Client
from cli.submit import INTERRUPTED, OK, add_parser


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["submit", *argv])


class InterruptedClient(Client):
    """A client whose user presses Ctrl-C once ``after`` files were sent."""

    def __init__(self, *args, after: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.after, self.sent = after, 0

    def add_to_batch(self, *args, **kwargs):
        if self.sent == self.after:
            raise KeyboardInterrupt
        self.sent += 1
        return super().add_to_batch(*args, **kwargs)


def test_a_folder_is_one_batch_resumed_after_ctrl_c_without_duplicates(live_service, tmp_path, speech_path,
                                                                      monkeypatch):
    service = live_service(workers=0)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "calls"
    (folder / "day2").mkdir(parents=True)
    for name in ("a.wav", "b.wav", "day2/c.wav", "day2/d.wav"):
        shutil.copy(speech_path("asr_example.wav"), folder / name)
    args = _args(str(folder), "--language", "zh", "--progress", "none")
    options = {"language": "zh"}

    with InterruptedClient(service.base_url, after=2) as client:
        assert batch_cli.run(args, client, options) == INTERRUPTED
    state = list((tmp_path / "cache" / "tingxie" / "batches").iterdir())
    assert len(state) == 1  # the batch's id, for the next run

    with Client(service.base_url) as client:
        assert batch_cli.run(args, client, options) == OK
        assert not state[0].exists()  # a finished submission leaves no state behind
        batches = client._json("GET", "/api/v1/batches")["items"]
        assert len(batches) == 1 and batches[0]["status"] == "running" and batches[0]["total"] == 4
        keys = sorted(job["batch_key"] for job in client.batch_jobs(batches[0]["id"]))
        assert keys == ["a.wav", "b.wav", "day2/c.wav", "day2/d.wav"]
        assert all(job["options"]["language"] == "zh" for job in client.batch_jobs(batches[0]["id"]))


def test_a_list_of_files_and_links_must_not_be_mixed(tmp_path, speech_path):
    listing = tmp_path / "list.txt"
    listing.write_text(f"{speech_path('jfk.flac')}\nhttps://example.com/a.wav\n")
    entries = batch_cli.collect([], str(listing))
    assert [e.path is None for e in entries] == [False, True]


@pytest.mark.parametrize("line", ["https://example.com/a.wav", "s3://bucket/calls/b.wav"])
def test_links_in_a_list_are_sources(tmp_path, line):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# calls\n\n{line}\n")
    assert batch_cli.collect([], str(listing)) == [batch_cli.Entry(line)]
