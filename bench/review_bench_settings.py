"""Settings for bench/review_api.py's server: the project's settings plus a bare view (the framework floor)."""
from limrank_app.settings import *  # noqa: F401,F403

ROOT_URLCONF = "review_bench_urls"
DEBUG = False
