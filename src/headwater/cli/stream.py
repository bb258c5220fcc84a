"""``headwater stream``: consume StreamSources from Redis Streams or NATS JetStream."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from headwater.cli.commands import repo_option


@click.command()
@repo_option
@click.option("--source", "-s", "sources", multiple=True,
              help="Only this StreamSource (repeat the option); default: every StreamSource "
                   "of a registered view.")
@click.option("--consumer", "-c", default=None,
              help="This consumer's name in the group (default: the host name). Keep it "
                   "across restarts; give each consumer process its own.")
@click.option("--max-events", type=click.IntRange(min=1), default=None,
              help="Stop after handling this many messages.")
@click.option("--idle-exit", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS", help="Stop after this many seconds without a message.")
def stream(repo: Path, sources: tuple[str, ...], consumer: str | None,
           max_events: int | None, idle_exit: float | None) -> None:
    """Consume stream events into the online store and the offline data.

    Reads the topics of the StreamSources (a Redis stream key or a NATS subject, the
    source's topic) as one consumer of the group set in headwater.yaml (stream: type, url,
    group, batch_size, block_ms, claim_timeout_s). Each message is one event, a JSON object
    with the source's columns. Events update every view of their source online (window
    tiles for aggregations) exactly once, even after a crash, and are appended to the
    source's batch folder partitioned by date. Malformed messages go to <topic>.dead with
    the reason. Runs until Ctrl+C or SIGTERM (the batch in progress is finished), then
    prints the counters.
    """
    from headwater.store import FeatureStore
    from headwater.streaming.consumer import (
        Consumer,
        default_consumer_name,
        open_reader,
        stream_feeds,
    )

    name = consumer or default_consumer_name()
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with FeatureStore(repo) as store:
            settings = store.settings.stream
            feeds = stream_feeds(store, sources)
            reader = open_reader(settings, [f.topic for f in feeds], name)
            try:
                runtime = Consumer(store, feeds, reader, consumer=name,
                                   batch_size=settings.batch_size, block_ms=settings.block_ms)
                recovered = runtime.recover()
                if recovered.published or recovered.deleted:
                    click.echo(f"recovered pending offline files: {recovered.published} "
                               f"published, {recovered.deleted} deleted (to be redelivered)")
                topics = ", ".join(f"{f.topic} -> {f.name}" for f in feeds)
                click.echo(f"consuming {topics} from {settings.type} as '{name}' in group "
                           f"'{settings.group}'. Press Ctrl+C to stop.", err=True)
                counters = runtime.run(stop, max_events=max_events, idle_exit=idle_exit)
            finally:
                reader.close()
        click.echo(counters.summary())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
