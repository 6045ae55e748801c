"""Sends one PagerDuty Events API v2 event to itsmd with the official PagerDuty client.

Run by tests/it/tls.rs: pagerduty_client.py BASE_URL CA_FILE ROUTING_KEY ACTION DEDUP_KEY,
ACTION being trigger, acknowledge or resolve. Prints the dedup_key the server answered.
The client (PyPI `pagerduty`, on httpx) takes base_url for the Events API host, and passes
`verify` (the test CA) and `trust_env` on to its HTTP client.
"""

import sys

import pagerduty


def main() -> int:
    base_url, ca_file, routing_key, action, dedup_key = sys.argv[1:6]
    client = pagerduty.EventsApiV2Client(
        routing_key, base_url=base_url, verify=ca_file, trust_env=False
    )
    if action == "trigger":
        key = client.trigger(
            "Replication lag on payments-db",
            "payments-db-1",
            dedup_key=dedup_key,
            severity="critical",
        )
    elif action == "acknowledge":
        key = client.acknowledge(dedup_key)
    elif action == "resolve":
        key = client.resolve(dedup_key)
    else:
        print(f"unknown action {action}", file=sys.stderr)
        return 2
    print(key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
