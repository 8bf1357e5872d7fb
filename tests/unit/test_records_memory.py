"""Records with the same fields given share one fields-set, and stay correct doing so."""

from __future__ import annotations

import copy
import pickle
import tracemalloc

import pytest

from pytest_modelgate.calls import records
from pytest_modelgate.calls.records import CallRecord, TestRecord, Usage


def _call(index: int, **fields: object) -> CallRecord:
    return CallRecord(
        test_id=f"t[{index}]",
        case_id=f"t[{index}]",
        arm="stable",
        model="m",
        call_index=0,
        started_at=1.0,
        latency_ms=100.0 + index,
        **fields,  # type: ignore[arg-type]
    )


def test_records_given_the_same_fields_share_one_set() -> None:
    first, second = _call(1), _call(2)
    assert first.model_fields_set is second.model_fields_set
    other = _call(3, cost_usd=0.1)
    assert other.model_fields_set is not first.model_fields_set
    assert other.model_fields_set == first.model_fields_set | {"cost_usd"}
    # Per model: a TestRecord given the same names has a set of its own.
    test = TestRecord(
        test_id="t", case_id="t", workflow="w", arm="stable", model="m", outcome="passed"
    )
    assert test.model_fields_set == {"test_id", "case_id", "workflow", "arm", "model", "outcome"}


def test_a_copy_with_updates_leaves_the_shared_set_alone() -> None:
    first, second = _call(1), _call(2)
    before = set(first.model_fields_set)
    updated = first.model_copy(update={"cost_usd": 0.5})
    assert "cost_usd" in updated.model_fields_set
    assert first.model_fields_set == before
    assert second.model_fields_set == before
    assert second.model_dump(exclude_unset=True).keys() == before
    for clone in (copy.copy(first), copy.deepcopy(first), pickle.loads(pickle.dumps(first))):
        assert clone == first
        assert clone.model_fields_set == before


def test_constructed_and_validated_records_keep_their_own_fields() -> None:
    built = CallRecord.model_construct(test_id="t", case_id="t", arm="stable", model="m")
    assert built.model_fields_set == {"test_id", "case_id", "arm", "model"}
    parsed = CallRecord.model_validate(_call(1).model_dump(mode="json"))
    assert parsed == _call(1)
    # Dumped in full, every field is given: one more shared set.
    assert parsed.model_fields_set == set(CallRecord.model_fields)


def test_sharing_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records, "_FIELDS_SETS", {})
    monkeypatch.setattr(records, "_MAX_FIELDS_SETS", 1)
    first = _call(1)
    unusual = _call(2, status=200)
    again = _call(3, status=200)
    assert len(records._FIELDS_SETS) == 1
    assert unusual.model_fields_set is not again.model_fields_set
    assert unusual.model_fields_set == again.model_fields_set == first.model_fields_set | {"status"}


def test_shared_sets_take_two_fifths_off_a_record() -> None:
    def size(count: int) -> int:
        tracemalloc.start()
        try:
            kept = [
                TestRecord(
                    test_id=f"t[{i}]",
                    case_id=f"t[{i}]",
                    workflow="w",
                    arm="stable",
                    model="m",
                    outcome="passed",
                    calls=(_call(i, usage=Usage(prompt_tokens=3, completion_tokens=4)),),
                )
                for i in range(count)
            ]
            used = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert len(kept) == count
        return used

    shared = size(2000)
    original = records._Frozen.model_post_init
    try:
        # Without sharing (pydantic's own behaviour): the same records.
        records._Frozen.model_post_init = lambda self, context, /: None  # type: ignore[method-assign]
        own = size(2000)
    finally:
        records._Frozen.model_post_init = original  # type: ignore[method-assign]
    assert shared < 0.75 * own
