"""Brokers by URL, and the fakeredis behaviour the cluster relies on.

The conformance tests here check what the queues rely on (a blocking pop that waits across threads, a stream
read that sees an entry added while it waits), not a gap of one fakeredis version: an upstream fix must not
break them.
"""

import threading
import time
from pathlib import Path

import pytest
import redis

from approaches.cluster.broker import SOCKET_TIMEOUT_S, BrokerError, connect, open_broker, streams_block
from approaches.cluster.queues import MAX_BLOCK_S
from approaches.core.errors import ConfigError
from approaches.core.urls import check_url, redact
from approaches.g_service import StreamQueue

pytestmark = pytest.mark.timeout(30)


def push_later(client: redis.Redis, command: str, *args, delay: float = 0.3) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(delay), getattr(client, command)(*args)))
    thread.start()
    return thread


@pytest.fixture
def memory():
    with open_broker("memory://") as broker:
        yield connect(broker.url), connect(broker.url)


@pytest.mark.parametrize("command", ["brpop", "brpoplpush"])
def test_fakeredis_brpop_and_brpoplpush_block_across_threads_until_a_push(memory, command):
    waiter, pusher = memory
    thread = push_later(pusher, "lpush", "q", b"tile")
    started = time.perf_counter()
    got = waiter.brpop(["q"], 2) if command == "brpop" else waiter.brpoplpush("q", "held", 2)
    waited = time.perf_counter() - started
    thread.join()
    assert got in ((b"q", b"tile"), b"tile") and 0.2 < waited < 1.5


def test_fakeredis_brpop_returns_none_after_its_timeout(memory):
    started = time.perf_counter()
    assert memory[0].brpop(["q"], 0.2) is None
    assert 0.15 < time.perf_counter() - started < 1.0


def test_a_stream_reader_gets_an_entry_added_while_it_waits_whatever_fakeredis_does_with_block(memory):
    # fakeredis 2.40 answered XREADGROUP BLOCK at once (and could put an entry added meanwhile in the pending list
    # of a consumer that never received it); 2.41 waits.  StreamQueue polls without BLOCK on memory:// (see
    # broker.streams_block), so either way one reader, and only one, gets the entry, while it waits.
    waiter, pusher = memory
    assert not streams_block(waiter) and streams_block(redis.Redis.from_url("redis://127.0.0.1:1/0"))
    first, second = StreamQueue(waiter, "s", "w1"), StreamQueue(waiter, "s", "w2")
    thread = push_later(pusher, "xadd", "s", {"body": b"tile"})
    started = time.perf_counter()
    delivery = first.next(timeout=5)
    waited = time.perf_counter() - started
    thread.join()
    assert delivery is not None and delivery.body == b"tile" and 0.2 < waited < 5
    assert second.next(timeout=0.2) is None and waiter.xpending("s", StreamQueue.GROUP)["pending"] == 1


def test_memory_brokers_are_separate_and_closed_after_use():
    with open_broker("memory://") as one, open_broker("memory://") as two:
        connect(one.url).set("k", 1)
        assert connect(two.url).get("k") is None and not one.pods_are_processes
    with pytest.raises(BrokerError, match="not open in this process"):
        connect(one.url)


@pytest.mark.timeout(60)
def test_embedded_valkey_runs_with_aof_on_a_private_socket_and_leaves_nothing_behind():
    with pytest.raises(KeyboardInterrupt), open_broker("embedded://") as broker:  # Ctrl-C in the middle of a run
        client = connect(broker.url, retries=0)  # once the server is gone, say so at once
        assert broker.pods_are_processes and broker.url.startswith("unix://")
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.set("k", 1)
        socket = Path(broker.url.removeprefix("unix://"))
        assert socket.exists()
        raise KeyboardInterrupt
    assert not socket.parent.exists()
    with pytest.raises(redis.ConnectionError):
        client.ping()


def test_real_clients_may_block_longer_than_any_queue_does():
    # redis-py 8 defaults socket_timeout to 5 s, which would break a longer BRPOP on a real server.
    client = connect("redis://127.0.0.1:1/0")  # not connected until used
    assert client.connection_pool.connection_kwargs["socket_timeout"] == SOCKET_TIMEOUT_S > MAX_BLOCK_S


def test_an_unreachable_redis_is_one_clear_error_without_the_password():
    with pytest.raises(BrokerError, match="cannot reach") as raised, open_broker("redis://u:secret@127.0.0.1:1/0"):
        pass
    assert "secret" not in str(raised.value) and "***" in str(raised.value)


@pytest.mark.parametrize("url", ["http://x", "memory", "", "kafka://broker:9092"])
def test_unknown_broker_urls_are_config_errors(url):
    with pytest.raises(ConfigError, match=r"^broker .* is not a broker URL") as raised:
        check_url(url)
    assert raised.value.setting == "broker"  # core names the setting; the command line says --broker


def test_redact_leaves_urls_without_a_password_alone():
    assert redact("redis://h:6379/0") == "redis://h:6379/0"
    assert redact("rediss://:pw@h:6380/1") == "rediss://:***@h:6380/1"
