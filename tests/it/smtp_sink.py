"""A real SMTP server for the mail-out tests: aiosmtpd on 127.0.0.1:PORT, every message
it accepts written into the Maildir DIR (new/). While a file DIR.reject exists, every
message is refused for good (554), as a server that will not take it.
Usage: python3 smtp_sink.py PORT DIR"""

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
