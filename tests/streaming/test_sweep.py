"""A running consumer publishes the committed offline files a consumer that died after its
commit left behind, once they have sat unchanged for the claim timeout."""

from __future__ import annotations

import os
import time
from pathlib import Path

import headwater as hw
from headwater.streaming.consumer import Consumer, open_reader, stream_feeds
from headwater.streaming.event_files import SeqClock, final_path, marker_of, plan_files
from headwater.streaming.event_files import write_files as write_event_files
from headwater.streaming.ingest import Feed, last_scope
from headwater.streaming.parquet_append import PushFolder, push_folder
from tests.streaming.stream_repo import events, make_repo, stream_yaml, unique_topic


def _left(store: hw.FeatureStore, feed: Feed, folder: PushFolder, consumer: str, *,
          committed: bool, age_s: float) -> list[Path]:
    """Pending files of ``consumer`` as a crash leaves them: written, their markers
    committed online or not, last changed ``age_s`` seconds ago."""
    rows = events(4)
    files, _ = plan_files(rows.column("ts"), SeqClock())
    paths = write_event_files(folder, rows, files, pending=consumer)
    if committed:
        store.online.update(feed.online_views[-1].name, (), lambda marked, current: {},
                            scope=last_scope(feed),
                            markers=[marker_of(final_path(p).name) for p in paths])
    then = time.time() - age_s
    for path in paths:
        os.utime(path, (then, then))
    return paths


def test_a_dead_consumers_committed_files_become_visible(redis_url: str,
                                                          tmp_path: Path) -> None:
    topic = unique_topic()
    repo = make_repo(tmp_path / "repo", topic,
                     stream_yaml("redis", redis_url, claim_timeout_s=0.3))
    with hw.FeatureStore(repo) as store:
        (feed,) = stream_feeds(store)
        folder = push_folder(feed.union, store.repo_path, partitioned=True)
        dead = _left(store, feed, folder, "dead", committed=True, age_s=120)
        unfinished = _left(store, feed, folder, "dead", committed=False, age_s=120)
        # a live consumer writing now (dated ahead: the test outlasts its 0.3 s timeout)
        live = _left(store, feed, folder, "live", committed=True, age_s=-60)
        reader = open_reader(store.settings.stream, [feed.topic], "sweeper")
        try:
            runtime = Consumer(store, [feed], reader, consumer="sweeper", block_ms=100)
            runtime.run(idle_exit=1.5)  # nothing to read: it sweeps meanwhile
        finally:
            reader.close()
    assert dead and all(final_path(p).is_file() and not p.exists() for p in dead)
    assert unfinished and all(p.exists() for p in unfinished)  # its owner deletes it
    assert live and all(p.exists() for p in live)  # a live consumer's: too recent
