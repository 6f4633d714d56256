"""kombu's filesystem transport (the embedded default's broker), with each message written whole.

kombu's producer opens the message file under its final name and then writes it; its consumer renames
and reads without waiting for the producer's lock, so a consumer polling in between read an empty file
and the worker died (JSONDecodeError in kombu's _get; celery/kombu issue 1551). Here a message is
written under a name the consumer skips (it takes only `<n>_<uuid>.<queue>.msg`) and renamed into place,
which is atomic within one folder.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    # kombu publishes with keyword arguments its base class signature leaves out, as its own _put takes.
    def _put(self, queue: Any, message: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(message)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
