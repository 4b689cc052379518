"""The work queue: client-go's semantics (coalescing, one timer and one backoff
per key), shared fairly between namespaces."""

from __future__ import annotations

import threading
import time

from podplug.operator.workqueue import WorkQueue

A, B, C = ("team-a", "ms"), ("team-b", "ms"), ("team-c", "ms")


def test_keys_coalesce_and_are_never_processed_twice_at_once() -> None:
    q = WorkQueue()
    q.add(A)
    q.add(A)
    assert q.get(0.1) == A
    q.add(A)  # while in flight: dirty, not a second copy
    assert q.get(0.05) is None
    q.done(A)
    assert q.get(0.1) == A


def test_retries_back_off_exponentially_and_reset_on_forget() -> None:
    q = WorkQueue(base_delay_s=0.01, max_delay_s=0.04)
    q.add(A)
    delays = []
    for _ in range(4):
        assert q.get(1.0) == A
        q.done(A)
        delays.append(q.add_rate_limited(A))
    assert delays == [0.01, 0.02, 0.04, 0.04]
    assert q.get(1.0) == A
    q.done(A)
    q.forget(A)
    assert q.add_rate_limited(A) == 0.01


def test_a_key_has_one_timer_whatever_adds_it_so_backoffs_never_stack() -> None:
    q = WorkQueue(base_delay_s=0.2, max_delay_s=0.2)
    for _ in range(20):  # resyncs, watch events and retries of a failing object
        q.add_rate_limited(A)
        q.add_after(A, 0.2)
    assert q.get(0.5) == A
    q.done(A)
    assert q.get(0.4) is None  # exactly one delivery


def test_an_earlier_timer_replaces_a_later_one() -> None:
    q = WorkQueue()
    q.add_after(A, 5.0)
    q.add_after(A, 0.05)
    assert q.get(1.0) == A


def test_a_busy_namespace_does_not_starve_another() -> None:
    q = WorkQueue()
    for i in range(50):
        q.add(("team-a", f"ms-{i}"))
    q.add(B)  # behind fifty of team-a's keys
    first = q.get(0.1)
    assert first == ("team-a", "ms-0")
    q.charge("team-a", 2.0)  # the pass it ran
    q.done(first)
    assert q.get(0.1) == B


def test_an_idle_namespace_starts_level_not_with_a_credit() -> None:
    q = WorkQueue()
    q.charge("team-a", 100.0)
    q.charge("team-b", 100.0)
    q.add(A)
    q.add(B)
    q.add(C)  # team-c never ran: it starts at the least-served active namespace's time
    got = [q.get(0.1) for _ in range(3)]
    assert set(got) == {A, B, C}


def test_one_namespace_never_holds_more_than_its_share_of_workers() -> None:
    q = WorkQueue(namespace_limit=1)
    q.add(("team-a", "one"))
    q.add(("team-a", "two"))
    q.add(B)
    first = q.get(0.1)
    second = q.get(0.1)
    assert {first, second} == {("team-a", "one"), B}
    assert q.get(0.05) is None  # team-a's second key waits for its first
    q.done(("team-a", "one"))
    assert q.get(0.1) == ("team-a", "two")


def test_a_penalized_namespace_waits_and_others_do_not() -> None:
    q = WorkQueue()
    q.penalize("team-a", 0.3)
    q.add(A)
    q.add(B)
    assert q.get(0.1) == B
    assert q.get(0.05) is None
    t0 = time.monotonic()
    assert q.get(1.0) == A
    assert time.monotonic() - t0 > 0.1


def test_discard_drops_a_queued_key_and_its_timer() -> None:
    q = WorkQueue()
    q.add(A)
    q.add_after(B, 0.05)
    q.discard(A)
    q.discard(B)
    assert q.get(0.2) is None


def test_close_wakes_every_waiting_worker() -> None:
    q = WorkQueue()
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(q.get())) for _ in range(3)]
    for t in threads:
        t.start()
    q.close()
    for t in threads:
        t.join(2)
    assert got == [None, None, None]
