"""The pacing of processing on the listener's database thread (pure logic, a fake clock)."""

from __future__ import annotations

import pytest

from bot.http.pacing import Pacer


def test_quiet_intake_lets_processing_run_in_long_chunks():
    pacer = Pacer(share=0.25, busy_chunk_s=0.008, idle_chunk_s=0.02, quiet_s=0.1)
    assert pacer.next_chunk(now=10.0) == (0.02, 0.0)  # nothing ever stored
    pacer.intake(now=10.0)
    pacer.ran(now=10.01, elapsed_s=0.01)
    assert pacer.next_chunk(now=10.2) == (0.02, 0.0)  # quiet for 0.2 s > 0.1 s: no rest needed


def test_busy_intake_bounds_processing_to_its_share():
    pacer = Pacer(share=0.25, busy_chunk_s=0.008, idle_chunk_s=0.02, quiet_s=0.1)
    pacer.intake(now=5.0)
    assert pacer.next_chunk(now=5.0) == (0.008, 0.0)  # the first chunk of a storm runs at once
    pacer.ran(now=5.008, elapsed_s=0.008)
    budget, wait = pacer.next_chunk(now=5.010)
    assert budget == 0.0 and wait == pytest.approx(0.022)  # 8 ms of work, then 24 ms of rest: 25 %
    pacer.intake(now=5.020)
    assert pacer.next_chunk(now=5.032) == (0.008, 0.0)


def test_share_must_be_a_fraction():
    with pytest.raises(ValueError, match="share"):
        Pacer(share=0)
