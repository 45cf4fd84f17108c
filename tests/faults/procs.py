"""Processes the fault tests kill: `python -m tests.faults.procs edge|central ...` (no mocks).

edge:    a node that keeps producing events into its durable outbox until it made --total, and
         publishes them through the real Publisher and MqttLink (the detector is not needed).
central: the real CentralService (migrations, ingest workers, alerts) from a YAML config.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from pathlib import Path
from types import FrameType

from broker.client import BrokerAddress, MqttLink
from broker.topics import command_topic
from central.app import CentralService
from central.config import load_config
from edge.outbox import Outbox
from edge.publish import CommandHandler, Publisher
from tests.factories import make_event

log = logging.getLogger("tests.faults.procs")


def _stopper() -> threading.Event:
    done = threading.Event()

    def _handler(_sig: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    return done


def produce(outbox: Outbox, *, site: str, node: str, total: int, batch: int) -> int:
    """Add up to `batch` new events unless the outbox already numbered `total`; returns added."""
    want = min(batch, total - outbox.last_seq())
    if want <= 0:
        return 0
    return len(outbox.add([make_event(site=site, node=node) for _ in range(want)]))


def run_edge(args: argparse.Namespace) -> None:
    """A node: produce into the outbox at a steady rate, publish, obey resend commands."""
    done = _stopper()
    outbox = Outbox(Path(args.outbox), retain_acked_s=args.retain_acked_s)
    link = MqttLink(
        f"wildwatch-{args.site}-{args.node}",
        BrokerAddress("127.0.0.1", args.port),
        clean_session=False,
        reconnect_min_s=0.2,
        reconnect_max_s=1.0,
    )
    publisher = Publisher(outbox, link)
    link.subscribe(
        command_topic(args.site, args.node),
        CommandHandler(outbox=outbox, publisher=publisher).handle,
    )
    link.start()
    publisher.start()
    print("edge started", flush=True)
    while not done.wait(args.every_s):
        produce(outbox, site=args.site, node=args.node, total=args.total, batch=args.batch)
    publisher.stop()
    link.stop()
    outbox.close()


def run_central(args: argparse.Namespace) -> None:
    """Central: the real service without HTTP, until SIGTERM."""
    done = _stopper()
    service = CentralService(load_config(Path(args.config)), serve_http=False)
    service.start()
    print("central started", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        service.stop()


def main() -> None:
    """Parse the sub-command and run it."""
    parser = argparse.ArgumentParser(prog="python -m tests.faults.procs")
    sub = parser.add_subparsers(dest="what", required=True)
    edge = sub.add_parser("edge")
    edge.add_argument("--outbox", required=True)
    edge.add_argument("--port", type=int, required=True)
    edge.add_argument("--site", default="changxing")
    edge.add_argument("--node", default="cx-node-01")
    edge.add_argument("--total", type=int, required=True)
    edge.add_argument("--batch", type=int, default=10)
    edge.add_argument("--every-s", type=float, default=0.01)
    edge.add_argument("--retain-acked-s", type=float, default=0.0)
    central = sub.add_parser("central")
    central.add_argument("--config", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    started = time.monotonic()
    if args.what == "edge":
        run_edge(args)
    else:
        run_central(args)
    log.info("%s ran %.1fs", args.what, time.monotonic() - started)


if __name__ == "__main__":
    main()
