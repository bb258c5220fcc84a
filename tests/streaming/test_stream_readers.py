"""The stream readers against real Redis Streams and NATS JetStream: delivery until ack,
redelivery after a restart, takeover from a dead consumer, dead letters."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from headwater.streaming.messages import Message
from headwater.streaming.nats import NatsStreamReader
from headwater.streaming.reader import StreamReader
from headwater.streaming.redis_streams import RedisStreamReader
from tests.streaming.stream_repo import NatsPublisher, RedisPublisher, publisher, unique_topic

Open = Callable[[str, float], StreamReader]


def read_all(reader: StreamReader, want: int, rounds: int = 50) -> list[Message]:
    got: list[Message] = []
    for _ in range(rounds):
        if len(got) >= want:
            break
        got += reader.read(want - len(got), 100)
    return got


@pytest.fixture(params=["redis", "nats"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _url(kind: str, request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("redis_url" if kind == "redis" else "nats_url"))


def opener(kind: str, url: str, topic: str) -> Open:
    def open_reader(consumer: str, claim: float) -> StreamReader:
        cls = RedisStreamReader if kind == "redis" else NatsStreamReader
        return cls(url, [topic], group="g", consumer=consumer, claim_timeout_s=claim)

    return open_reader


def test_unacknowledged_messages_come_back_after_a_restart(
        kind: str, request: pytest.FixtureRequest) -> None:
    url, topic = _url(kind, request), unique_topic()
    open_reader = opener(kind, url, topic)
    with publisher(kind, url, topic) as pub:
        first = open_reader("c1", 0.5)  # creates the group or durable consumer
        ids = pub.publish([b'{"n": %d}' % i for i in range(10)])
        got = read_all(first, 10)
        assert [m.id for m in got] == ids
        first.ack(got[:4])
        first.close()  # "crash": 6 read, never acknowledged
        again = open_reader("c1", 0.5)
        try:
            deadline = time.monotonic() + 20
            redelivered: list[Message] = []
            while len(redelivered) < 6 and time.monotonic() < deadline:
                redelivered += again.read(10, 200)
            assert sorted(m.id for m in redelivered) == sorted(ids[4:])
            again.ack(redelivered)
            assert again.read(10, 300) == []  # everything acknowledged: nothing more
        finally:
            again.close()


def test_a_second_consumer_takes_over_what_a_dead_one_left(
        kind: str, request: pytest.FixtureRequest) -> None:
    url, topic = _url(kind, request), unique_topic()
    open_reader = opener(kind, url, topic)
    with publisher(kind, url, topic) as pub:
        dead = open_reader("dead", 0.5)
        ids = pub.publish([b'{"n": %d}' % i for i in range(5)])
        assert len(read_all(dead, 5)) == 5
        dead.close()  # never comes back under that name
        alive = open_reader("alive", 0.5)
        try:
            taken: list[Message] = []
            deadline = time.monotonic() + 20
            while len(taken) < 5 and time.monotonic() < deadline:
                taken += alive.read(5, 200)
            assert sorted(m.id for m in taken) == sorted(ids)
            alive.ack(taken)
        finally:
            alive.close()


def test_dead_letters_keep_the_payload_id_and_reason(
        kind: str, request: pytest.FixtureRequest) -> None:
    url, topic = _url(kind, request), unique_topic()
    reader = opener(kind, url, topic)("c1", 30)
    with publisher(kind, url, topic) as pub:
        try:
            ids = pub.publish([b"{broken"])
            message = read_all(reader, 1)[0]
            reader.dead_letter([(message, "not JSON. Fix: publish JSON")])
            reader.ack([message])
            if isinstance(pub, RedisPublisher):
                [letter] = pub.dead_letters()
                assert letter == {b"id": ids[0].encode(), b"reason": b"not JSON. Fix: publish "
                                  b"JSON", b"data": b"{broken"}
            else:
                assert isinstance(pub, NatsPublisher)
                [(data, headers)] = pub.dead_letters()
                assert data == b"{broken"
                assert headers == {"Hw-Id": ids[0], "Hw-Reason": "not JSON. Fix: publish JSON"}
        finally:
            reader.close()


def test_redis_trimmed_pending_entries_are_skipped(redis_url: str) -> None:
    topic = unique_topic()
    with publisher("redis", redis_url, topic) as pub:
        assert isinstance(pub, RedisPublisher)
        first = RedisStreamReader(redis_url, [topic], group="g", consumer="c",
                                  claim_timeout_s=60)
        ids = pub.publish([b'{"n": 1}', b'{"n": 2}'])
        assert len(read_all(first, 2)) == 2
        first.close()
        pub.client.xdel(topic, ids[0])  # trimmed while pending
        again = RedisStreamReader(redis_url, [topic], group="g", consumer="c",
                                  claim_timeout_s=60)
        try:
            assert [m.id for m in again.read(10, 100)] == [ids[1]]
            pending = pub.client.xpending(topic, "g")["pending"]
            assert pending == 1  # the trimmed entry was acknowledged
        finally:
            again.close()
