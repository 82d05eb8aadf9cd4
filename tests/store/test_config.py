import pytest

from store.config import load_settings
from store.errors import ConfigError


def test_defaults_are_embedded(monkeypatch, tmp_path):
    for var in ("DATABASE_URL", "REDIS_URL", "RABBITMQ_URL", "S3_BUCKET", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PM_HOME", str(tmp_path))
    s = load_settings()
    assert s.effective_database_url.startswith("sqlite:///")
    assert s.effective_database_url.endswith("pm.sqlite3")
    assert s.redis_url is None and s.s3_bucket is None and not s.llm_enabled
    assert s.artifacts_dir == tmp_path / "artifacts"


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("PORT", "eighty", "PORT"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL"),
        ("POST_DEPLOY_CHECK_DELAY_MS", "-5", "POST_DEPLOY_CHECK_DELAY_MS"),
    ],
)
def test_invalid_value_names_the_variable(monkeypatch, var, value, needle):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=needle):
        load_settings()


def test_postgres_url_gets_the_psycopg_driver(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    assert load_settings().database_url == "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def test_secrets_are_not_shown(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-very-secret")
    s = load_settings()
    assert "sk-very-secret" not in repr(s)
    assert s.llm_enabled
