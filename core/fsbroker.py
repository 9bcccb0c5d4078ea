"""The embedded broker: kombu's filesystem transport, with each message whole before it can be seen.

kombu's own ``_put`` creates the message file under its final name, then writes it. A consumer
listing the folder in between takes the empty file and fails to decode it, and Celery's consuming
loop dies of that: the worker process stays up but takes no more tasks (seen in the test suite with
the web tier and a worker busy at once, about once a run). Here the message is written under a name
no consumer looks for (``.<uuid>.partial``: not ``*.<queue>.msg``) and renamed into place, which on
one filesystem is atomic. A message that still does not decode (an older version's, cut short by a
crash) is dropped with a warning rather than ending the loop: its job is queued in the database, so
the sweeper sends it again (``TINGXIE_RESEND_AFTER_S``).
"""
from __future__ import annotations

import logging
import os
import uuid
from time import monotonic_ns

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

log = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        # kombu's naming, whose sorted order is the consuming order; nanoseconds, zero-padded, so
        # that messages put within one millisecond keep theirs.
        key = uuid.uuid4()
        name = f"{monotonic_ns():020d}_{key}.{queue}.msg"
        partial = os.path.join(self.data_folder_out, f".{key}.partial")
        try:
            with open(partial, "xb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            try:
                os.unlink(partial)
            except OSError:
                pass
            raise filesystem.ChannelError(f"Cannot add a message to {self.data_folder_out!r}: {exc}") from exc

    def _get(self, queue):
        while True:  # each call consumes (removes) the file it read, so this ends
            try:
                return super()._get(queue)
            except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
                log.warning("dropped a message on %s that does not decode (%s); the sweeper sends its job "
                            "again", queue, exc)


class Transport(filesystem.Transport):
    Channel = Channel
