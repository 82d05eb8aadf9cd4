"""Peers with no telemetry: names failing calls give to the other side become candidates (issue #3)."""

from agents.evidence import peers
from agents.evidence.timeutil import parse_ts

ONSET = parse_ts("2026-03-01T10:00:00Z")


def test_peer_names_reads_fields_clusters_and_status_phrases():
    assert peers.peer_names('level=error msg="dependency error" upstream=adyen') == {"adyen"}
    assert peers.peer_names('{"msg": "request failed", "upstream": "pg-users"}') == {"pg-users"}
    assert peers.peer_names("upstream_cluster=outbound|443||api.stripe.com response_code=503") == {"api.stripe.com"}
    assert peers.peer_names("call failed: tax-provider returned HTTP 503") == {"tax-provider"}
    assert peers.peer_names("downstream error: 502 from POST http://fx-rates:8080/v1/quote") == {"fx-rates"}


def test_peer_names_ignores_prose_paths_and_methods():
    assert peers.peer_names("could not connect to server: Connection refused") == set()
    assert peers.peer_names("Health check failed: /ready returned 503") == set()
    assert peers.peer_names("503 from POST") == set()
    assert peers.peer_names("user 42 returned the order") == set()


def _line(minute, service, message, level="ERROR", host=None):
    line = {"ts": f"2026-03-01T{9 + minute // 60:02d}:{minute % 60:02d}:00Z", "service": service, "level": level,
            "message": message}
    if host:
        line["host"] = host
    return line


def test_discover_keeps_new_unknown_peers_only():
    lines = [_line(m, "mailer", "request failed upstream=adyen") for m in range(61, 75)]
    # Our own service under its cluster address, a pod name, and a peer that always fails a little.
    lines += [_line(m, "mailer", "upstream=checkout.default.svc.cluster.local timed out") for m in range(61, 75)]
    lines += [_line(m, "mailer", "upstream=checkout-7d9f8c6b5-x2kq4 timed out") for m in range(61, 75)]
    lines += [_line(m, "mailer", "request failed upstream=geoip") for m in range(0, 120, 4)]
    found = peers.discover(lines, known=["mailer", "checkout"], onset=ONSET, ratio=1.0)
    assert set(found) == {"adyen"}
    assert found["adyen"] == 14.0
    # Warnings count, info lines do not.
    info = [_line(m, "mailer", "upstream=adyen ok", level="INFO") for m in range(61, 90)]
    assert peers.discover(info, known=["mailer"], onset=ONSET, ratio=1.0) == {}


def test_stack_frames_and_instance_words_are_no_peers():
    assert peers.peer_names("\tat javax.servlet.http.HttpServlet.service(HttpServlet.java:750)") == set()
    assert peers.peer_names("Connection to node 2 (kafka-sessions:9092) could not be established") == {"kafka-sessions"}
