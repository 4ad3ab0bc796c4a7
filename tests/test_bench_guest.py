"""The host vs guest benchmark's arithmetic (pure: reports written here, nothing run)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from conftest import load_bench


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("bench_guest")


def _report(stages: dict[str, float], guest: dict[str, float]) -> dict[str, Any]:
    return {"stages": [{"name": n, "seconds": s} for n, s in stages.items()],
            "build_in": {"mode": "guest" if guest else "host", "seconds": guest},
            "vm": {"boot_seconds": 5.0, "seconds": 40.0}}


def test_steps_come_from_the_stages_on_the_host_and_the_guest_times_in_it(
        bench: ModuleType) -> None:
    host = _report({"build-bpftool": 6.0, "build-testmod": 2.0, "boot+run": 30.0}, {})
    guest = _report({"share": 5.0, "boot+run": 200.0},
                    {"bpftool": 165.0, "testmod": 38.0, "test_progs": 38.0, "helpers": 0.0})
    h, g = bench.measured(host, "host", "cold", 50.0), bench.measured(guest, "guest", "cold", 260.0)
    assert h.steps == {"bpftool": 6.0, "testmod": 2.0, "test_progs": 0.0, "helpers": 0.0}
    assert (h.build, h.boot_to_tests) == (8.0, 5.0)  # the host's build is before the boot
    assert (g.build, g.boot_to_tests) == (241.0, 246.0)


def test_table_puts_host_and_guest_side_by_side_with_ratios(bench: ModuleType) -> None:
    def m(mode: str, temperature: str, bpftool: float, wall: float) -> Any:
        steps = dict.fromkeys(bench.STEPS, 0.0) | {"bpftool": bpftool}
        return bench.Measured(mode, temperature, wall, steps, boot=5.0, vm=40.0)

    rows = bench.table([m("host", "cold", 6.0, 60.0), m("guest", "cold", 165.0, 300.0),
                        m("host", "warm", 1.0, 20.0), m("guest", "warm", 9.0, 40.0)])
    assert rows[0].split() == ["cold", "host", "cold", "guest", "ratio", "warm", "host",
                               "warm", "guest", "ratio"]
    bpftool = rows[1].split()
    assert bpftool == ["bpftool", "6.0s", "165.0s", "27.5x", "1.0s", "9.0s", "9.0x"]
    assert rows[-1].split()[-6:] == ["60.0s", "300.0s", "5.0x", "20.0s", "40.0s", "2.0x"]
    assert bench.ratio(3.0, 0.0) == "n/a"
