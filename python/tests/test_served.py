"""bots._adapter.Served, what every adapter hands out: a batch asked before earlier feedback came back
never holds a task still out; feedback ends its batch and every older one; the served list survives a
state round trip with its batches."""
import numpy as np
import pytest

import bots
from bots._adapter import Served


def served(n=64):
    return Served(bots.Pool(n, config={"batch": 4, "seed": 5, "rho": 0}))


def feed(s, batch):
    s.update(batch, pass_rates=np.full(len(batch), 0.5))


def test_a_batch_fed_late_stays_out_of_the_next_selections():
    s = served()
    b1 = s.next_batch(4)
    b2 = s.next_batch(4)  # asked before b1's feedback
    assert not set(b1) & set(b2)
    feed(s, b1)
    assert s.pending == [int(t) for t in b2]
    b3 = s.next_batch(4)  # b2 is still being rolled out
    assert not set(b3) & set(b2)
    feed(s, b2)
    assert s.pending == [int(t) for t in b3]


def test_feedback_ends_its_batch_and_every_older_one():
    s = served()
    s.next_batch(4)
    b2, b3 = s.next_batch(4), s.next_batch(4)
    # b1 is never fed back (dropped by the trainer); b2's feedback covers only part of it.
    feed(s, b2[:2])
    assert s.pending == [int(t) for t in b3], "b1 and the rest of b2 are not waited for"
    # Feedback for tasks never handed out changes nothing of what is out.
    feed(s, np.array([t for t in range(64) if t not in set(b3)][:4]))
    assert s.pending == [int(t) for t in b3]


def test_a_pool_too_small_for_what_is_out_starts_over():
    s = served(8)
    s.next_batch(4)
    s.next_batch(4)
    b = s.next_batch(4)  # 12 > 8: the served list starts over
    assert s.pending == [int(t) for t in b]


def test_state_round_trip_keeps_the_batches():
    s = served()
    b1, b2 = s.next_batch(4), s.next_batch(3)
    state = s.state()
    assert state["pending_batches"] == [4, 3]
    t = served()
    t.check_resumed(state, "test")
    assert t.batches == s.batches
    feed(s, b1)
    feed(t, b1)
    assert t.pending == s.pending == [int(x) for x in b2]
    with pytest.raises(ValueError, match="do not split"):
        t.set_pending([1, 2, 3], [2, 2])
