"""The HTTP side: envelope, paging, auth, caps, faults, rate limit, drift."""

from __future__ import annotations

import gzip
import re
import threading
import time

import httpx
import orjson
import pytest

from iiqsync import entities as ent
from iiqsync.simulator import District, SimulatorServer
from iiqsync.simulator.server import build_parser

TOKEN = "sim-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ENVELOPE_KEYS = ["ItemCount", "Items", "Paging", "UserToken", "RequestDate", "ExecutionTime",
                 "StatusCode", "ServerName", "ProcessId", "Properties", "Metadata"]


@pytest.fixture(scope="module")
def district():
    return District(seed=4, users=2500, assets=700, locations=8, rooms=30, teams=5, tickets=450)


@pytest.fixture(scope="module")
def sim(district):
    with SimulatorServer(district, token=TOKEN) as server:
        yield server


@pytest.fixture
def client(sim):
    with httpx.Client(base_url=sim.url, headers=AUTH, timeout=10) as c:
        yield c


def fetch(client, entity: ent.Entity, page=0, size=None, body=None, **query):
    params = {"$p": page, **query}
    if size is not None:
        params["$s"] = size
    if entity.method == "POST":
        return client.post(entity.route, params=params, json=entity.body if body is None else body)
    return client.get(entity.route, params=params)


def test_envelope_and_paging_math(client, district):
    r = fetch(client, ent.ASSETS, page=2, size=64, **{"$o": "AssetId", "$d": "Ascending"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    data = r.json()
    assert list(data) == ENVELOPE_KEYS
    assert data["Paging"] == {"TotalRows": 700, "PageCount": 11, "PageSize": 64, "PageIndex": 2}
    assert data["ItemCount"] == len(data["Items"]) == 64
    assert data["StatusCode"] == 200 and data["Properties"] == {}
    assert data["Metadata"] == {"QueryEngineSource": "I"}
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$", data["RequestDate"])
    assert isinstance(data["ExecutionTime"], float)
    keys = list(district.keys("assets"))
    assert [i["AssetId"] for i in data["Items"]] == keys[128:192]
    assert data["Items"] == list(district.items("assets"))[128:192]

    last = fetch(client, ent.ASSETS, page=10, size=64).json()
    assert last["ItemCount"] == 700 - 640 and last["Paging"]["PageIndex"] == 10
    past = fetch(client, ent.ASSETS, page=11, size=64).json()
    assert past["Items"] == [] and past["ItemCount"] == 0
    assert past["Paging"] == {"TotalRows": 700, "PageCount": 11, "PageSize": 64, "PageIndex": 11}


def test_every_declared_route_serves_its_entity(client, district):
    for entity in ent.ENTITIES.values():
        r = fetch(client, entity, size=1000, **{"$o": entity.key, "$d": entity.sort_direction})
        assert r.status_code == 200, entity.name
        data = r.json()
        assert data["Paging"]["TotalRows"] == district.count(entity.name)
        assert all(entity.key in i for i in data["Items"])
    # paths are case-insensitive, a trailing slash is fine, and the default page size is 100
    r = client.get("/API/V1.0/LOCATIONS/ROOMS/")
    assert r.status_code == 200 and r.json()["Paging"]["PageSize"] == 100
    assert r.json()["ItemCount"] == 30
    assert client.post("/api/v1.0/tickets").json()["ItemCount"] == 100


def test_sort_spellings(client, district):
    keys = list(district.keys("tickets"))
    desc = fetch(client, ent.TICKETS, size=5, **{"$o": "TicketId desc"}).json()["Items"]
    assert [i["TicketId"] for i in desc] == keys[::-1][:5]
    desc = fetch(client, ent.TICKETS, size=5, **{"$o": "TicketId", "$d": "Descending"}).json()["Items"]
    assert [i["TicketId"] for i in desc] == keys[::-1][:5]
    by_date = fetch(client, ent.TICKETS, size=450, **{"$o": "TicketCreatedDate desc"}).json()["Items"]
    dates = [i["CreatedDate"] for i in by_date]
    assert dates == sorted(dates, reverse=True)
    users = fetch(client, ent.USERS, size=50, **{"$o": "UserId", "$d": "Ascending"}).json()["Items"]
    assert [u["UserId"] for u in users] == list(district.keys("users"))[:50]


def test_gzip_when_asked(sim):
    with httpx.Client(base_url=sim.url, headers=AUTH) as c:
        raw = c.post("/api/v1.0/assets?$s=50", headers={"Accept-Encoding": "gzip"}, json={})
        assert raw.headers.get("content-encoding") == "gzip"
        assert raw.json()["ItemCount"] == 50
        plain = c.post("/api/v1.0/assets?$s=50", headers={"Accept-Encoding": "identity"}, json={})
        assert "content-encoding" not in plain.headers
    with httpx.stream("POST", sim.url + "/api/v1.0/assets?$s=5", headers={**AUTH, "Accept-Encoding": "gzip"},
                      json={}) as r:
        body = b"".join(r.iter_raw())
    assert orjson.loads(gzip.decompress(body))["ItemCount"] == 5


def test_auth(sim):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}):
        r = httpx.get(sim.url + "/api/v1.0/locations", headers=headers)
        assert r.status_code == 401
        assert r.json()["StatusCode"] == 401 and r.json()["Message"]
    assert httpx.get(sim.url + "/api/v1.0/locations",
                     headers={"authorization": f"bearer {TOKEN}"}).status_code == 200
    with SimulatorServer(District(users=5, assets=5, tickets=5), token=TOKEN, forbidden=True) as s:
        r = httpx.get(s.url + "/api/v1.0/locations", headers=AUTH)
        assert r.status_code == 403 and r.json()["StatusCode"] == 403


def test_unknown_route_and_wrong_method(client):
    assert client.get("/api/v1.0/fines").status_code == 404
    assert client.get("/api/v1.0/assets").status_code == 405
    assert client.post("/api/v1.0/teams/all").status_code == 405
    assert client.post("/api/v1.0/assets?$p=x", json={}).status_code == 400


def test_users_capped_at_1000(client, district):
    r = fetch(client, ent.USERS, page=0, size=2000).json()
    assert r["ItemCount"] == 1000 and len(r["Items"]) == 1000
    assert r["Paging"] == {"TotalRows": 2500, "PageCount": 2, "PageSize": 2000, "PageIndex": 0}
    second = fetch(client, ent.USERS, page=1, size=2000).json()
    keys = list(district.keys("users"))
    assert [u["UserId"] for u in second["Items"]] == keys[2000:2500]
    ok = fetch(client, ent.USERS, page=2, size=1000).json()
    assert ok["ItemCount"] == 500 and ok["Paging"]["PageCount"] == 3
    # other lists are not capped
    assert fetch(client, ent.ASSETS, size=5000).json()["ItemCount"] == 700


def test_users_cap_can_answer_400():
    with SimulatorServer(District(users=30, assets=5, tickets=5), token=TOKEN, over_cap="error",
                         page_caps={"users": 10}) as s:
        r = httpx.post(s.url + "/api/v1.0/users?$s=20", headers=AUTH, json={})
        assert r.status_code == 400
        assert httpx.post(s.url + "/api/v1.0/users?$s=10", headers=AUTH, json={}).status_code == 200


def test_asset_type_filter_in_body(client, district):
    body = {"OnlyShowDeleted": False, "Filters": [{"Facet": "AssetType", "Id": ent.DEVICES_ASSET_TYPE}]}
    data = fetch(client, ent.ASSETS, size=1000, body=body).json()
    assert data["Paging"]["TotalRows"] == district.count("assets", [ent.DEVICES_ASSET_TYPE]) < 700
    assert {i["AssetTypeId"] for i in data["Items"]} == {ent.DEVICES_ASSET_TYPE}
    body = {"filters": [{"facet": "assettype", "id": ent.DEVICES_ASSET_TYPE.upper(), "Negative": True}]}
    other = fetch(client, ent.ASSETS, size=1000, body=body).json()
    assert other["Paging"]["TotalRows"] + data["Paging"]["TotalRows"] == 700
    assert ent.DEVICES_ASSET_TYPE not in {i["AssetTypeId"] for i in other["Items"]}
    assert fetch(client, ent.ASSETS, size=10, body={"Filters": []}).json()["Paging"]["TotalRows"] == 700


def test_custom_field_definitions_route(client, district):
    for strategy, entity in (("AggregateAsset", "assets"), ("AggregateUser", "users"),
                             ("AggregateTicket", "tickets")):
        r = client.post(ent.CUSTOM_FIELDS_ROUTE, params={"$p": 0, "$s": 999999},
                        json={"SiteScope": "Aggregate", "Strategy": strategy})
        assert r.status_code == 200
        assert r.json()["Items"] == district.custom_field_definitions(entity)
    assert client.post(ent.CUSTOM_FIELDS_ROUTE, json={"Strategy": "Nope"}).status_code == 400


def test_custom_field_changes_are_served():
    d = District(users=10, assets=40, tickets=10)
    with SimulatorServer(d, token=TOKEN) as s, httpx.Client(base_url=s.url, headers=AUTH) as c:
        def defs():
            return c.post(ent.CUSTOM_FIELDS_ROUTE, json={"Strategy": "AggregateAsset"}).json()["Items"]

        tid = d.add_custom_field("assets", 'x"; DROP TABLE Users;--', "Number", fill_rate=1.0)
        assert defs()[-1]["CustomFieldType"]["Name"] == 'x"; DROP TABLE Users;--'
        items = c.post("/api/v1.0/assets?$s=40", json={}).json()["Items"]
        assert all(any(v["CustomFieldTypeId"] == tid for v in i["CustomFieldValues"]) for i in items)
        d.rename_custom_field("assets", tid, "🎒" * 50)
        assert defs()[-1]["CustomFieldType"]["Name"] == "🎒" * 50
        d.delete_custom_field("assets", tid)
        assert tid not in {x["CustomFieldTypeId"] for x in defs()}


@pytest.mark.parametrize("retry_after", [True, False])
def test_rate_limit_answers_429(retry_after):
    d = District(users=5, assets=20, tickets=5)
    with SimulatorServer(d, token=TOKEN, rate_limit=5, retry_after=retry_after) as s:
        with httpx.Client(base_url=s.url, headers=AUTH) as c:
            codes = [c.get("/api/v1.0/locations").status_code for _ in range(12)]
            assert codes[:5] == [200] * 5 and codes[5] == 429
            r = c.get("/api/v1.0/locations")
            assert r.status_code == 429 and r.json()["StatusCode"] == 429
            if retry_after:
                assert int(r.headers["Retry-After"]) >= 1
            else:
                assert "Retry-After" not in r.headers
            assert s.count("429", "locations") == codes.count(429) + 1
            assert s.count("200") == codes.count(200) and s.count("requests") == 13
            stats = httpx.get(s.url + "/_sim/stats").json()
            assert stats["locations"]["429"] == codes.count(429) + 1
            time.sleep(1.05)
            assert c.get("/api/v1.0/locations").status_code == 200


def test_random_faults_are_seeded_and_counted():
    d = District(users=5, assets=50, tickets=5)

    def run():
        with SimulatorServer(d, token=TOKEN, error_rate=0.3, fault_seed=42) as s:
            with httpx.Client(base_url=s.url, headers=AUTH) as c:
                codes = [c.get("/api/v1.0/locations").status_code for _ in range(40)]
            assert s.count("503") == codes.count(503)
            return codes

    first = run()
    assert set(first) == {200, 503} and 4 < first.count(503) < 25
    assert run() == first


def test_cut_off_and_non_json_bodies():
    d = District(users=5, assets=200, tickets=5)
    with SimulatorServer(d, token=TOKEN, truncate_rate=1.0) as s:
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(s.url + "/api/v1.0/assets?$s=100", headers=AUTH, json={})
        assert s.count("truncated") == 1
        s.configure(truncate_rate=0.0, garbage_rate=1.0)
        r = httpx.post(s.url + "/api/v1.0/assets?$s=100", headers=AUTH, json={})
        assert r.status_code == 200
        with pytest.raises(ValueError):
            orjson.loads(r.content)
        s.configure(garbage_rate=0.0)
        assert httpx.post(s.url + "/api/v1.0/assets", headers=AUTH, json={}).json()["ItemCount"] == 100


def test_timeouts_hang_past_the_client():
    with SimulatorServer(District(users=5, assets=5, tickets=5), token=TOKEN, timeout_rate=1.0,
                         timeout_seconds=5) as s:
        t0 = time.perf_counter()
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(s.url + "/api/v1.0/locations", headers=AUTH, timeout=0.3)
        assert time.perf_counter() - t0 < 2
        assert s.count("timeouts") == 1
    # stop() does not wait for the hung request


def test_concurrent_requests_are_not_serialised():
    """16 clients with 300 ms of latency each are in flight together, not one by one
    (measured as overlap of the requests' lifetimes, not as a wall-clock bound)."""
    d = District(users=50, assets=2000, tickets=50)
    with SimulatorServer(d, token=TOKEN, latency_ms=300) as s:
        results, spans = [], []
        gate = threading.Barrier(16)

        def worker(p):
            gate.wait()
            start = time.perf_counter()
            r = httpx.post(s.url + f"/api/v1.0/assets?$p={p}&$s=100", headers=AUTH, json={}, timeout=30)
            spans.append((start, time.perf_counter()))
            results.append((r.status_code, r.json()["ItemCount"]))

        threads = [threading.Thread(target=worker, args=(p,)) for p in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(results) == [(200, 100)] * 16
    # The most requests in flight at one moment: served one by one this would be 1.
    in_flight = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
    assert in_flight >= 8, f"only {in_flight} of 16 requests were served at the same time"


def test_item_latency():
    with SimulatorServer(District(users=5, assets=100, tickets=5), token=TOKEN, item_latency_ms=5) as s:
        t0 = time.perf_counter()
        httpx.post(s.url + "/api/v1.0/assets?$s=100", headers=AUTH, json={})
        assert time.perf_counter() - t0 >= 0.5


def test_latency_total_counts_the_work_toward_the_latency():
    """With latency_total the latency is the response time: 16 pages of 500 assets
    asked at once each take about the nominal 0.6 s, not 0.6 s plus the time the
    (single-threaded) simulator spends building all of them."""
    d = District(users=5, assets=8000, tickets=5)
    with SimulatorServer(d, token=TOKEN, latency_ms=100, item_latency_ms=1,
                         latency_total=True) as s:
        elapsed = []

        def worker(p):
            t0 = time.perf_counter()
            r = httpx.post(s.url + f"/api/v1.0/assets?$p={p}&$s=500", headers=AUTH, json={},
                           timeout=30)
            elapsed.append(time.perf_counter() - t0)
            assert r.json()["ItemCount"] == 500

        threads = [threading.Thread(target=worker, args=(p,)) for p in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert min(elapsed) >= 0.6
    assert len(elapsed) == 16


def test_cache_pages_repeats_a_page_until_the_district_changes():
    """cache_pages serves a list page again byte for byte, latency included, and
    builds it anew once the district changes under it."""
    d = District(seed=3, users=5, assets=300, tickets=5)
    with SimulatorServer(d, token=TOKEN, cache_pages=True, latency_ms=50) as s, \
            httpx.Client(base_url=s.url, headers=AUTH) as c:
        def page():
            t0 = time.perf_counter()
            r = c.post("/api/v1.0/assets?$p=1&$s=100", json={})
            assert time.perf_counter() - t0 >= 0.05
            return r.content

        first = page()
        assert page() == first  # RequestDate and all: the very same bytes
        edited = d.edit("assets", [orjson.loads(first)["Items"][0]["AssetId"]])
        fresh = orjson.loads(page())
        assert fresh["Items"][0]["AssetId"] == edited[0]
        assert fresh["RequestDate"] != orjson.loads(first)["RequestDate"]
        assert fresh["Items"][0] != orjson.loads(first)["Items"][0]
        d.set_drift(every=1, rows=1, ops=["insert"])
        totals = {orjson.loads(page())["Paging"]["TotalRows"] for _ in range(3)}
        assert len(totals) == 3  # drift on: every read is built, and drifts


def test_drift_visible_between_pages():
    d = District(seed=8, users=20, assets=300, tickets=20)
    with SimulatorServer(d, token=TOKEN) as s, httpx.Client(base_url=s.url, headers=AUTH) as c:
        def page(p, size=100):
            return c.post(f"/api/v1.0/assets?$p={p}&$s={size}&$o=AssetId", json={}).json()

        first = page(0)
        added = d.insert("assets", 10)
        removed = d.delete("assets", [i["AssetId"] for i in first["Items"][::30]])
        assert page(0)["Paging"]["TotalRows"] == 306
        served = [i["AssetId"] for p in range(4) for i in page(p)["Items"]]
        assert set(added) <= set(served) and not set(removed) & set(served)
        assert served == list(d.keys("assets"))
        assert first["Paging"]["TotalRows"] == 300

        # drift while serving: every 2 list requests, 3 rows change
        s.configure(drift_every=2, drift_rows=3, drift_ops=["insert"])
        for _ in range(6):
            page(0, 1)
        assert d.count("assets") == 306 + 9
        assert [op for op, _e, _k in d.drift_log] == ["insert"] * 3
        s.configure(drift_every=0)
        r = httpx.post(s.url + "/_sim/drift", json={"entity": "assets", "op": "delete", "n": 5})
        assert len(r.json()["keys"]) == 5 and d.count("assets") == 310


def test_cli_parser():
    args = build_parser().parse_args(["--port", "0", "--assets", "5", "--rate-limit", "3",
                                      "--no-retry-after", "--error-rate", "0.1"])
    assert (args.port, args.assets, args.rate_limit, args.retry_after, args.error_rate) == (0, 5, 3.0, False,
                                                                                             0.1)
    assert build_parser().parse_args([]).token == "iiqsync-demo-token"


@pytest.mark.parametrize("args, said", [
    (["--port", "-1"], "argument --port: '-1' is not a port (1 to 65535, or 0 for any free one)"),
    (["--port", "70000"], "argument --port: '70000' is not a port (1 to 65535, or 0 for any free one)"),
    (["--error-rate", "2"], "argument --error-rate: 2 is not between 0 and 1 (0.1 is one in ten)"),
    (["--timeout-rate", "1.5"],
     "argument --timeout-rate: 1.5 is not between 0 and 1 (0.1 is one in ten)"),
    (["--garbage-rate", "nan"], "argument --garbage-rate: 'nan' is not a finite number"),
    (["--drift-ops", "foo"],
     "argument --drift-ops: 'foo': expected one or more of insert, delete, edit, comma separated"),
    (["--rate-limit", "-1"], "argument --rate-limit: -1 is below 0"),
    (["--latency-ms", "-100"], "argument --latency-ms: -100 is below 0"),
    (["--latency-ms", "inf"], "argument --latency-ms: 'inf' is not a finite number"),
    (["--default-page-size", "0"], "argument --default-page-size: 0 is below 1"),
    (["--drift-rows", "-3"], "argument --drift-rows: -3 is below 0"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_command_line_names_the_option_of_a_value_no_knob_takes(args, said):
    """`iiqsync fake-iiq` with a value out of its option's range: argparse's one-line
    error naming the option, exit 2, not a traceback (nor a value taken silently)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "iiqsync", "fake-iiq", *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines()[-1] == f"iiqsync fake-iiq: error: {said}", done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_cli_parser_takes_the_edges_of_each_range():
    args = build_parser().parse_args(["--port", "65535", "--error-rate", "1", "--timeout-rate", "0",
                                      "--latency-ms", "0", "--drift-ops", "insert, edit"])
    assert (args.port, args.error_rate, args.timeout_rate, args.latency_ms) == (65535, 1, 0, 0)
    assert args.drift_ops == ("insert", "edit")
    assert build_parser().parse_args([]).drift_ops == ("insert", "delete", "edit")
    with SimulatorServer(District(seed=1, users=3, assets=3, tickets=3), drift_every=1,
                         drift_ops=args.drift_ops) as s:
        assert s.district._drift.ops == ("insert", "edit")


def test_chunked_request_body(sim):
    def body():
        yield b'{"Filters": [{"Facet": "AssetType", '
        yield b'"Id": ' + orjson.dumps(ent.DEVICES_ASSET_TYPE) + b"}]}"

    with httpx.Client(base_url=sim.url, headers=AUTH) as c:
        r = c.post("/api/v1.0/assets?$s=1000", content=body())
        assert r.status_code == 200
        assert {i["AssetTypeId"] for i in r.json()["Items"]} == {ent.DEVICES_ASSET_TYPE}
        assert c.get("/api/v1.0/teams/all").status_code == 200  # the connection is still in step


def test_command_line_serves_until_interrupted():
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "iiqsync.simulator", "--port", "0", "--token", "cli-token",
         "--assets", "42"],
        stdout=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        url = re.search(r"(http://\S+)", first).group(1)
        assert "cli-token" in proc.stdout.readline()
        r = httpx.post(url + "/api/v1.0/assets", headers={"Authorization": "Bearer cli-token"}, json={})
        assert r.json()["Paging"]["TotalRows"] == 42
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
