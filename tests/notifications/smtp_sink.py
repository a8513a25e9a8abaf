"""An aiosmtpd handler for the tests' SMTP server process: every accepted message is written to
a folder as one .eml file (written whole, then renamed, so a reader never sees half of one).

    python -m aiosmtpd -n -l 127.0.0.1:PORT -c tests.notifications.smtp_sink.Sink FOLDER

Recipients whose local part starts with "refuse" are refused with 550 (a permanent failure);
a file FOLDER/delay holding seconds makes each RCPT wait that long before answering (a slow
server, for killing a sender mid-delivery before anything was accepted).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path


class Sink:
    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_cli(cls, parser, *args):
        # aiosmtpd's command line hands the handler its arguments through this hook.
        if len(args) != 1:
            parser.error("Sink takes one argument: the folder to write messages to")
        return cls(args[0])

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        delay = self.folder / "delay"
        if delay.exists():
            await asyncio.sleep(float(delay.read_text() or 0))
        if address.split("@")[0].startswith("refuse"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        name = uuid.uuid4().hex
        tmp = self.folder / f".{name}.tmp"
        tmp.write_bytes(envelope.content)
        os.replace(tmp, self.folder / f"{name}.eml")
        return "250 Message accepted for delivery"
