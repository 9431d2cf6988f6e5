"""Settings read from the environment: DATABASE_URL's query options arrive as text and are given the types
Django and psycopg act on (a text "true" or "2" would be ignored or rejected)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _options(database_url: str) -> dict:
    code = ("import json; from limrank_app import settings as s; "
            "print(json.dumps(s.DATABASES['default'].get('OPTIONS', {})))")
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "limrank_app.settings"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("query, expected", [
    ("?server_side_binding=true&prepare_threshold=2", {"server_side_binding": True, "prepare_threshold": 2}),
    ("?server_side_binding=off&prepare_threshold=none", {"server_side_binding": False, "prepare_threshold": None}),
    ("", {}),
])
def test_database_url_options_get_their_types(query, expected):
    options = _options(f"postgres://user@db.example.org:5432/limrank{query}")
    assert {k: options[k] for k in expected} == expected
    assert set(expected) <= set(options)


def test_a_bad_prepare_threshold_is_an_error_at_start():
    with pytest.raises(subprocess.CalledProcessError) as exc:
        _options("postgres://user@db.example.org:5432/limrank?prepare_threshold=often")
    assert "ImproperlyConfigured: DATABASE_URL: prepare_threshold must be a whole number or none, got 'often'" in exc.value.stderr
