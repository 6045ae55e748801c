"""A real SMTP server for the mail-out tests: aiosmtpd on 127.0.0.1:PORT, every message
it accepts written into the Maildir DIR (new/). Usage: python3 smtp_sink.py PORT DIR"""

import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

port, folder = int(sys.argv[1]), sys.argv[2]
controller = Controller(Mailbox(folder), hostname="127.0.0.1", port=port)
controller.start()
print("ready", flush=True)
try:
    while True:
        time.sleep(3600)
except KeyboardInterrupt:
    pass
finally:
    controller.stop()
