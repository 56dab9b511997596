"""The simulator's log of list answers (``served()``, ``/_sim/served``) and
``most_in_flight``, which tests read to learn how many page requests IIQ was
answering at once."""

from __future__ import annotations

import threading

import httpx
import pytest

from iiqsync.simulator import District, SimulatorServer
from iiqsync.simulator.server import most_in_flight

TOKEN = "sim-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def answer(route: str, items: int, start: float, end: float) -> dict:
    return {"route": route, "items": items, "start": start, "end": end}


LOG = [
    answer("assets", 100, 0.0, 1.0),
    answer("assets", 100, 0.5, 1.5),   # overlaps the first
    answer("assets", 100, 0.8, 1.2),   # overlaps both: three at 0.8-1.0
    answer("assets", 100, 1.5, 2.0),   # starts as the second ends: not at once
    answer("assets", 20, 1.6, 1.9),    # a small probe alongside the fourth
    answer("users", 100, 0.1, 1.9),    # another route
]


@pytest.mark.parametrize("route, min_items, most", [
    ("assets", 0, 3),
    ("assets", 21, 3),      # the probe left out changes nothing here
    ("users", 0, 1),
    ("tickets", 0, 0),      # nothing served
    ("assets", 101, 0),     # every answer smaller
])
def test_most_in_flight_counts_overlapping_answers(route, min_items, most):
    assert most_in_flight(LOG, route, min_items) == most


def test_most_in_flight_answers_end_to_start_and_small_ones():
    one_by_one = [answer("teams", 50, float(i), float(i + 1)) for i in range(5)]
    assert most_in_flight(one_by_one, "teams") == 1
    with_probes = one_by_one + [answer("teams", 16, i + 0.5, i + 0.7) for i in range(5)]
    assert most_in_flight(with_probes, "teams") == 2
    assert most_in_flight(with_probes, "teams", min_items=17) == 1
    # The order the log is in does not matter.
    assert most_in_flight(list(reversed(with_probes)), "teams") == 2


def test_served_logs_list_answers_as_the_server_gives_them():
    """Two page requests sent together, with 200 ms of latency, then a third alone:
    each 200 is logged with its item count and its arrival before its answer; two
    were answered at once. Refused requests and the simulator's own routes are not
    list answers."""
    district = District(seed=2, users=5, assets=150, tickets=5, locations=2, rooms=3, teams=3)
    with SimulatorServer(district, token=TOKEN, latency_ms=200) as sim, \
            httpx.Client(base_url=sim.url, headers=AUTH, timeout=10) as client:
        gate = threading.Barrier(2)
        codes = []

        def page(p: int) -> None:
            gate.wait(5)
            codes.append(client.post(f"/api/v1.0/assets?$p={p}&$s=60", json={}).status_code)

        together = [threading.Thread(target=page, args=(p,)) for p in (0, 1)]
        for t in together:
            t.start()
        for t in together:
            t.join(10)
        last = client.post("/api/v1.0/assets?$p=2&$s=60", json={})
        assert sorted(codes) == [200, 200] and last.status_code == 200
        # Not list answers: a refused token, a control route.
        assert httpx.post(sim.url + "/api/v1.0/assets", json={},
                          headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/_sim/counts").status_code == 200

        served = sim.served()
        over_http = client.get("/_sim/served").json()
        in_flight = sim.most_in_flight("assets")
        largest = sim.most_in_flight("assets", min_items=31)

        sim.reset_stats()
        assert sim.served() == []

    assert over_http == served
    assert [(s["route"], s["items"]) for s in served] == [("assets", 60)] * 2 + [("assets", 30)]
    for s in served:
        assert s["start"] <= s["end"]
        assert s["end"] - s["start"] >= 0.19, s  # the latency is inside the span
    assert in_flight == 2
    assert most_in_flight(served, "assets") == 2
    assert largest == 2  # the 30-item answer came alone
    assert most_in_flight(served, "assets", min_items=61) == 0
