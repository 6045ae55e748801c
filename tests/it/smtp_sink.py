"""A real SMTP server for the mail-out tests: aiosmtpd on 127.0.0.1:PORT, every message
it accepts written into the Maildir DIR (new/). While a file DIR.reject exists, every
message is refused for good (554), as a server that will not take it; while a file DIR.slow
exists, each message waits that many seconds (its content) before it is taken.
Usage: python3 smtp_sink.py PORT DIR"""

import asyncio
import os
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

port, folder = int(sys.argv[1]), sys.argv[2]


class Sink(Mailbox):
    async def handle_DATA(self, server, session, envelope):
        if os.path.exists(folder + ".reject"):
            return "554 5.7.1 Refused by the test"
        try:
            with open(folder + ".slow") as f:
                await asyncio.sleep(float(f.read().strip() or 0))
        except FileNotFoundError:
            pass
        return await super().handle_DATA(server, session, envelope)


controller = Controller(Sink(folder), hostname="127.0.0.1", port=port)
controller.start()
print("ready", flush=True)
try:
    while True:
        time.sleep(3600)
except KeyboardInterrupt:
    pass
finally:
    controller.stop()
