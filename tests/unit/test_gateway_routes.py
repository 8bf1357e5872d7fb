"""The ``routes:`` section, sticky bucketing and the shadow log's whole-line guarantee."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from pytest_modelgate.calls.catalog import load_catalog
from pytest_modelgate.config.settings import check_config, load_config
from pytest_modelgate.errors import ConfigError, UnknownModelError
from pytest_modelgate.gateway.bucketing import BUCKETS, basis_points, bucket_of
from pytest_modelgate.gateway.shadow import ShadowLog, ShadowPool
from pytest_modelgate.gateway.state import RouteState, StaticState, choose_arm

MODELS = {
    name: {"base_url": "http://127.0.0.1:9/v1", "api_key_env": None}
    for name in ("sim-a", "sim-b", "sim-c")
}


def write(tmp_path: Path, routes: object) -> Path:
    path = tmp_path / "modelgate.yaml"
    path.write_text(yaml.safe_dump({"models": MODELS, "routes": routes}), encoding="utf-8")
    return path


def route_error(tmp_path: Path, route: dict[str, object]) -> str:
    path = write(tmp_path, {"triage": route})
    with pytest.raises(ConfigError) as info:
        check_config(load_config(path), load_catalog())
    return str(info.value)


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (
            {"stable": "sim-a", "candidate": "sim-b", "canary_percent": 101},
            "routes.triage.canary_percent",
        ),
        (
            {"stable": "sim-a", "candidate": "sim-b", "shadow_percent": -1},
            "routes.triage.shadow_percent",
        ),
        ({"stable": "sim-a", "fallback": ["sim-b", "sim-b"]}, "fallback[1] names 'sim-b' twice"),
        (
            {"stable": "sim-a", "candidate": "sim-b", "fallback": ["sim-b"]},
            "fallback[0] names 'sim-b'",
        ),
        ({"stable": "sim-a", "fallback": ["sim-a"]}, "a model of the route itself"),
        ({"stable": "sim-a", "canary_percent": 5}, "need a candidate"),
        ({"stable": "sim-a", "kill_switch": {}}, "routes.triage.kill_switch"),
        ({"stable": "sim-a", "kill_switch": {"env": "not a name"}}, "kill_switch.env"),
        ({"stable": "sim-a", "sticky_key": "maybe"}, "routes.triage.sticky_key"),
        ({"stable": "sim-a", "colour": "red"}, "routes.triage.colour"),
        (
            {
                "stable": "sim-a",
                "rollback": [{"metric": "error_rate", "op": ">", "threshold": 2, "unit": "rate"}],
            },
            "routes.triage.rollback[0]: a rate threshold lies in [0, 1], got 2",
        ),
        (
            {"stable": "sim-a", "rollback": [{"metric": "latency_p95_ms", "op": ">"}]},
            "routes.triage.rollback[0].threshold",
        ),
    ],
)
def test_a_bad_route_is_an_error_naming_the_file_and_field(
    tmp_path: Path, route: dict[str, object], expected: str
) -> None:
    message = route_error(tmp_path, route)
    assert "modelgate.yaml" in message
    assert expected in message


@pytest.mark.parametrize(
    ("route", "field"),
    [
        ({"stable": "no-such-model"}, "routes.triage.stable"),
        ({"stable": "sim-a", "candidate": "sim-x"}, "routes.triage.candidate"),
        ({"stable": "sim-a", "fallback": ["sim-b", "nope-3"]}, "routes.triage.fallback[1]"),
    ],
)
def test_an_unknown_model_names_the_route_field(
    tmp_path: Path, route: dict[str, object], field: str
) -> None:
    path = write(tmp_path, {"triage": route})
    with pytest.raises(UnknownModelError) as info:
        check_config(load_config(path), load_catalog())
    assert f"modelgate.yaml: {field}: unknown model" in str(info.value)


def test_a_full_route_loads_with_its_rollback_triggers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "triage": {
                "stable": "sim-a",
                "candidate": "sim-b",
                "canary_percent": 5,
                "shadow_percent": 20.5,
                "sticky_key": "required",
                "fallback": ["sim-c"],
                "kill_switch": {"env": "KILL_TRIAGE", "file": "/tmp/kill"},
                "log_text": True,
                "contract": {"json": True, "schema": {"type": "object"}, "tools": []},
                "rollback": [
                    {
                        "metric": "error_rate",
                        "op": ">",
                        "threshold": 0.015,
                        "unit": "rate",
                        "min_requests": 200,
                    },
                    {"metric": "latency_p95_ms", "op": ">", "threshold": 492, "unit": "ms"},
                ],
            }
        },
    )
    config = load_config(path)
    check_config(config, load_catalog())
    route = config.routes["triage"]
    assert (route.canary_percent, route.shadow_percent, route.fallback) == (5.0, 20.5, ("sim-c",))
    assert route.contract is not None
    assert route.contract.tools == ()
    assert [t.metric for t in route.rollback] == ["error_rate", "latency_p95_ms"]
    state = RouteState.from_settings(route)
    assert (state.canary_bp, state.shadow_bp) == (500, 2050)


def test_a_bad_route_name_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"routes: .*route name 'a b'"):
        load_config(write(tmp_path, {"a b": {"stable": "sim-a"}}))


def test_the_bucket_is_the_documented_sha256_and_stable_across_processes() -> None:
    import hashlib

    digest = hashlib.sha256(b"triage\x00\x00user-42").digest()
    assert bucket_of("triage", "user-42") == int.from_bytes(digest[:8], "big") % BUCKETS
    code = (
        "from pytest_modelgate.gateway.bucketing import bucket_of; "
        "print(bucket_of('triage', 'user-42'))"
    )
    # A fresh interpreter with another hash seed: the same bucket (no use of hash()).
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
        timeout=60,
    )
    assert int(out.stdout) == bucket_of("triage", "user-42")
    assert bucket_of("other", "user-42") != bucket_of("triage", "user-42")


def test_buckets_split_keys_in_proportion_and_shadow_is_independent_of_canary() -> None:
    state = RouteState("a", "b", canary_bp=basis_points(10), shadow_bp=basis_points(30))
    arms = {"stable": 0, "candidate": 0}
    shadowed = 0
    for i in range(20_000):
        key = f"user-{i}"
        choice = choose_arm(
            state, bucket_of("r", key), bucket_of("r", key, salt="shadow"), killed=False
        )
        arms[choice.arm] += 1
        shadowed += choice.shadow_model is not None
    assert 1_800 <= arms["candidate"] <= 2_200
    # 30% of the 90% on stable (canary requests are not mirrored): independence.
    assert 0.27 * 20_000 * 0.9 <= shadowed <= 0.33 * 20_000 * 0.9


def test_killed_or_rolled_back_sends_everything_to_stable_without_shadow() -> None:
    state = RouteState("a", "b", canary_bp=BUCKETS, shadow_bp=BUCKETS)
    assert choose_arm(state, 0, 0, killed=False).arm == "candidate"
    killed = choose_arm(state, 0, 0, killed=True)
    assert (killed.arm, killed.model, killed.shadow_model, killed.killed) == (
        "stable",
        "a",
        None,
        True,
    )
    backend = StaticState({})
    backend.set_state("r", state)
    backend.roll_back("r")
    assert choose_arm(backend.state("r"), 0, 0, killed=False).arm == "stable"


def test_a_full_shadow_queue_drops_and_close_is_bounded() -> None:
    release = threading.Event()
    pool = ShadowPool(workers=1, queue_size=2)
    accepted = [pool.submit(lambda: release.wait(5)) for _ in range(6)]
    # One running, two queued; the other three are dropped at once.
    assert accepted.count(True) in (2, 3)
    assert accepted[-1] is False
    not_run = pool.close(timeout_s=0.2, cancel=True)
    release.set()
    assert not_run >= 1
    assert pool.submit(lambda: None) is False


_WRITER = """
import sys
from pytest_modelgate.gateway.shadow import ShadowLog
log = ShadowLog(sys.argv[1])
for i in range(int(sys.argv[3])):
    log.append({"writer": sys.argv[2], "i": i, "pad": "x" * (i * 97 % 9000)})
log.close()
"""


def test_a_shadow_log_written_by_8_threads_and_2_processes_has_only_whole_lines(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shadow.jsonl"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER, encoding="utf-8")
    procs = [
        subprocess.Popen([sys.executable, str(script), str(path), f"p{n}", "300"]) for n in range(2)
    ]
    log = ShadowLog(path)

    def write(name: str) -> None:
        for i in range(150):
            # Lines up to ~9 kB: beyond PIPE_BUF, so atomicity rests on the lock.
            log.append({"writer": name, "i": i, "pad": "y" * (i * 61 % 9000)})

    threads = [threading.Thread(target=write, args=(f"t{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    log.close()
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    entries = [json.loads(line) for line in lines[:-1]]
    assert len(entries) == 8 * 150 + 2 * 300
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry["writer"]] = counts.get(entry["writer"], 0) + 1
    assert counts == {**{f"t{n}": 150 for n in range(8)}, "p0": 300, "p1": 300}
