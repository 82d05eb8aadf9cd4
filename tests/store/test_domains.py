import pytest

from store import domains
from store.db import make_engine, make_session_factory, upgrade
from store.errors import NotFound


@pytest.mark.parametrize("backend", ["sqlite", "pg"])
def test_domain_config_round_trip(request, backend):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with factory() as s:
        with pytest.raises(NotFound, match="upsert"):
            domains.get(session=s, domain="Bookings/Server/scheduler")
        domains.upsert(session=s, domain="Bookings/Server/scheduler", config={"slack_channel": "#bookings"})
        domains.upsert(session=s, domain="Bookings/Server/scheduler", config={"jira_project": "SCHED"})
        s.commit()
    with factory() as s:
        assert domains.get(session=s, domain="Bookings/Server/scheduler") == {
            "slack_channel": "#bookings", "jira_project": "SCHED"}
        domains.upsert(session=s, domain="Bookings/Server/scheduler", config={"x": 1}, merge=False)
        s.commit()
        assert domains.list_all(session=s) == {"Bookings/Server/scheduler": {"x": 1}}
        with pytest.raises(ValueError, match="name"):
            domains.upsert(session=s, domain=" ", config={})
    engine.dispose()
