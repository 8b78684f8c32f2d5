"""The run's board: records under blur:<run>:, each write with a TTL, all deleted at the end, checked on read."""

import pytest

from approaches.cluster.board import RUN_TTL_S, Board, new_run_id
from approaches.cluster.broker import connect, open_broker
from approaches.cluster.wire import ImagePlan, ImageReport, State, WireError


@pytest.fixture
def client():
    with open_broker("memory://") as broker:
        yield connect(broker.url)


def test_every_key_is_under_the_run_expires_and_goes_with_delete(client):
    board, other = Board(client, new_run_id()), Board(client, new_run_id())
    for each in (board, other):
        each.publish_plan(0, ImagePlan("img", 4, 4, "L", 3, 2))
        each.report(0, ImageReport(State.SAVED, 4, 4))
        each.count_assembled(0)
        each.mark_coordinated(1)
    keys = {key.decode() for key in client.keys(f"blur:{board.run}:*")}
    assert keys == {f"blur:{board.run}:{name}" for name in ("plans", "status", "progress", "coordinated")}
    assert all(0 < client.ttl(key) <= RUN_TTL_S for key in keys)
    assert board.coordinated() == 1 and board.assembled() == 1 and board.finished(1) == 1
    board.delete()
    assert client.keys(f"blur:{board.run}:*") == [] and len(client.keys(f"blur:{other.run}:*")) == 4


def test_records_are_checked_when_read(client):
    board = Board(client, new_run_id())
    client.hset(board.key("plans"), 0, b'{"name": "../x"}')
    client.hset(board.key("status"), 0, b"not json")
    with pytest.raises(WireError):
        board.plan(0)
    with pytest.raises(WireError, match="no plan for image 1"):
        board.plan(1)
    report = board.reports()[0]
    assert report.state is State.FAILED and "unreadable report" in report.reason
