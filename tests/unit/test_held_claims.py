"""A worker's record of the claims it holds, whatever order commits and claim rounds
are heard in (a late "given up" must not undo a later claim)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stemlog.runtime.held import HeldClaims


def test_a_late_release_does_not_undo_a_later_claim_round() -> None:
    held = HeldClaims()
    held.claimed("r", version=5)  # the event was delivered (version 5) and the run claimed
    held.committed("r", version=4, held=False)  # ...before the suspension's commit was heard
    assert "r" in held


def test_a_release_after_the_claimed_version_releases() -> None:
    held = HeldClaims()
    held.claimed("r", version=5)
    held.committed("r", version=6, held=True)
    held.committed("r", version=8, held=False)  # the drive suspended again
    assert "r" not in held
    held.committed("r", version=8, held=False)
    assert not held


def test_a_claim_at_the_same_version_as_the_release_wins() -> None:
    held = HeldClaims()  # a sleep committed at 7 gave the claim up; at its end a round took it
    held.claimed("r", version=7)
    held.committed("r", version=7, held=False)
    assert "r" in held


@given(st.permutations([("claim", 5), ("release", 4), ("take", 3)]))
def test_any_order_of_hearing_ends_in_what_happened_last(order: list[tuple[str, int]]) -> None:
    held = HeldClaims()
    for kind, version in order:
        if kind == "claim":
            held.claimed("r", version)
        else:
            held.committed("r", version, held=kind == "take")
    assert "r" in held  # in the store: take (3), release (4), claim (5)
