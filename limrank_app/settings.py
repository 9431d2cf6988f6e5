"""Settings read from the environment; production differs from development only by env."""
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("LIMRANK_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env(DEBUG=(bool, False))
environ.Env.read_env(BASE_DIR / ".env") if (BASE_DIR / ".env").exists() else None

DEBUG = env.bool("DEBUG", default=False)
# Without SECRET_KEY a development key is used; with DEBUG=false that is refused (limrank_app/checks.py): `manage.py
# check` reports an error and the web application does not start. The key below is public: sessions signed with it
# can be forged.
DEV_SECRET_KEY = "dev-insecure-limrank-studio-change-me"
SECRET_KEY = env.str("SECRET_KEY", default="") or DEV_SECRET_KEY
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served locally: /api/docs/ works offline
    "limrank_app",
    "curation",
    "training",
    "evaluation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "limrank_app.middleware.RequestGuardMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it answers a locked-out login attempt.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "limrank_app.urls"
WSGI_APPLICATION = "limrank_app.wsgi.application"
ASGI_APPLICATION = "limrank_app.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "limrank_app.roles.roles_context",
            ],
        },
    },
]

# Aggregates over all examples (dashboard, data quality, home counts) are cached this long and shown "as of" when
# they were computed (curation.selectors.aggregates). CACHE_URL: locmem by default; redis://... to share one copy.
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}
LIMRANK_AGGREGATE_CACHE_SECONDS = env.int("LIMRANK_AGGREGATE_CACHE_SECONDS", default=60)
# Bulk decisions and version builds of more examples than this run as Celery jobs with progress (a page to follow,
# the API answers 202); smaller ones run in the request.
LIMRANK_BULK_JOB_THRESHOLD = env.int("LIMRANK_BULK_JOB_THRESHOLD", default=5000)

# SQLite by default (embedded, no server); PostgreSQL through DATABASE_URL.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers wait for the lock instead of failing; IMMEDIATE avoids upgrade deadlocks.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE",
         "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;"}
    )
    DATABASES["default"].setdefault("TEST", {})["NAME"] = str(VAR_DIR / "test-db.sqlite3")
else:
    # Options in DATABASE_URL's query arrive as text. `server_side_binding=true`: Django only honours a real True.
    # `prepare_threshold=N`: psycopg prepares a statement after a connection ran it N times (Django's default is
    # never, for transaction-pooling proxies); with persistent connections the review queue's statements are then
    # parsed and planned once per connection instead of once per request.
    opts = DATABASES["default"].get("OPTIONS", {})
    if "server_side_binding" in opts:
        opts["server_side_binding"] = str(opts["server_side_binding"]).lower() in ("1", "true", "yes", "on")
    if "prepare_threshold" in opts:
        value = str(opts["prepare_threshold"]).lower()
        if value not in ("", "none") and not value.isdigit():
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(f"DATABASE_URL: prepare_threshold must be a whole number or none, got {value!r}")
        opts["prepare_threshold"] = None if value in ("", "none") else int(value)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles"))
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = env.str("MEDIA_ROOT", default=str(VAR_DIR / "media"))
# Trained adapters and models, benchmark caches and run files.
ARTIFACTS_DIR = Path(env.str("LIMRANK_ARTIFACTS_DIR", default=str(VAR_DIR / "artifacts")))
# Rendered dataset-version exports: a version never changes, so its files are written once and served from here.
LIMRANK_EXPORT_SNAPSHOT_DIR = env.str("LIMRANK_EXPORT_SNAPSHOT_DIR", default=str(VAR_DIR / "exports"))
# Commit a finished snapshot file (fsync, rename) in a background thread, so the response that wrote it ends at once.
LIMRANK_EXPORT_SNAPSHOT_BACKGROUND_COMMIT = env.bool("LIMRANK_EXPORT_SNAPSHOT_BACKGROUND_COMMIT", default=True)

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG and env.bool("HTTPS", default=False))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_CONTENT_TYPE_NOSNIFF = True

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "limrank_app.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["limrank_app.api.permissions.IsAdmin"],
    "DEFAULT_PAGINATION_CLASS": "limrank_app.api.pagination.IdCursorPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PARSER_CLASSES": [
        "limrank_app.api.parsers.HardenedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LimRank Studio API",
    "DESCRIPTION": "Synthesize, verify, curate, train on and benchmark reasoning-reranker data.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and Swagger UI are for studio users (session or token), like every other endpoint.
    "SERVE_PERMISSIONS": ["limrank_app.api.permissions.IsReviewer"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ExampleStatusEnum": "curation.models.Example.Status",
        "ExampleOriginEnum": "curation.models.Example.Origin",
        "JobStatusEnum": "limrank_app.jobs.JobStatus",
        "DatasetVersionStatusEnum": "curation.models.DatasetVersion.Status",
        "BackboneEnum": "training.models.TrainingJob.Backbone",
    },
}

# Celery: Redis in production, kombu's SQLAlchemy transport on a SQLite file by default.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=f"sqla+sqlite:///{VAR_DIR / 'broker.sqlite3'}")
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "curation.tasks.*": {"queue": "llm"},
    "training.tasks.*": {"queue": "gpu"},
    "evaluation.tasks.*": {"queue": "gpu"},
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
# Longer than the longest job, so Redis does not redeliver a running training job.
# (Redis only: kombu's SQLAlchemy transport hands its options to create_engine.)
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=12 * 3600)}
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else {}
)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A running job whose heartbeat is older than this is taken to belong to a dead worker.
LIMRANK_JOB_LEASE_SECONDS = env.int("LIMRANK_JOB_LEASE_SECONDS", default=120)
LIMRANK_WORKER_HEARTBEAT_SECONDS = env.float("LIMRANK_WORKER_HEARTBEAT_SECONDS", default=5.0)
# Every worker sweeps jobs this often (limrank_app/jobs.py job_sweep): lost workers' jobs and unsent queued jobs.
LIMRANK_JOB_SWEEP_SECONDS = env.float("LIMRANK_JOB_SWEEP_SECONDS", default=30.0)
# A queued job whose task was sent longer ago than this is sent again (the broker may have lost it).
LIMRANK_JOB_RESEND_SECONDS = env.int("LIMRANK_JOB_RESEND_SECONDS", default=3600)

# LLM endpoints per role (OpenAI-compatible: OpenAI, DeepSeek, a vLLM server).
LIMRANK_GENERATOR_BASE_URL = env.str("LIMRANK_GENERATOR_BASE_URL", default="http://127.0.0.1:8001/v1")
LIMRANK_GENERATOR_MODEL = env.str("LIMRANK_GENERATOR_MODEL", default="gpt-4o")
LIMRANK_GENERATOR_API_KEY = env.str("LIMRANK_GENERATOR_API_KEY", default="sk-local")
LIMRANK_REASONER_BASE_URL = env.str("LIMRANK_REASONER_BASE_URL", default="http://127.0.0.1:8001/v1")
LIMRANK_REASONER_MODEL = env.str("LIMRANK_REASONER_MODEL", default="deepseek-reasoner")
LIMRANK_REASONER_API_KEY = env.str("LIMRANK_REASONER_API_KEY", default="sk-local")
LIMRANK_LLM_TIMEOUT = env.float("LIMRANK_LLM_TIMEOUT", default=120.0)
LIMRANK_LLM_MAX_RETRIES = env.int("LIMRANK_LLM_MAX_RETRIES", default=4)
# Prices per million tokens (input, output) by model name, added to curation.llm.LLM_PRICES_PER_MTOK for the cost
# shown on a generation run; e.g. LIMRANK_LLM_PRICES='{"my-model": [0.5, 1.5]}'.
LIMRANK_LLM_PRICES = env.json("LIMRANK_LLM_PRICES", default={})

# Training: "accelerate" runs even one-process jobs under `accelerate launch` (as multi-GPU jobs always are);
# empty runs them inside the worker.
LIMRANK_TRAINING_LAUNCHER = env.str("LIMRANK_TRAINING_LAUNCHER", default="")

# ---------------------------------------------------------------- security and input limits (docs/security.md)
# Bodies other than uploads (JSON, forms) are read into memory: at most this many bytes.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=5 * 1024 * 1024)
# An uploaded file past this size streams to a temporary file on disk instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = env.int("FILE_UPLOAD_MAX_MEMORY_SIZE", default=2 * 1024 * 1024)
FILE_UPLOAD_TEMP_DIR = env.str("FILE_UPLOAD_TEMP_DIR", default=None)
# The largest upload (multipart body): refused from Content-Length before reading, and while streaming otherwise.
LIMRANK_MAX_UPLOAD_BYTES = env.int("LIMRANK_MAX_UPLOAD_BYTES", default=256 * 1024 * 1024)
FILE_UPLOAD_HANDLERS = [
    "limrank_app.middleware.BoundedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
# Query-string and form parameters that name a row by id: anything but a whole number in 1..2^63-1 is a 400.
LIMRANK_ID_QUERY_PARAMS = ["dataset", "generation_run", "example", "dataset_version", "benchmark", "model"]
# Login throttling (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one username from one address, that
# pair is locked out for AXES_COOLOFF_TIME hours, the right password included. API tokens do not log in, so token
# requests are unaffected. Lockouts live in the database (admins see and clear them in the Django admin).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_TIME", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_IPWARE_PROXY_COUNT = env.int("AXES_IPWARE_PROXY_COUNT", default=0)
# JSON bodies nested deeper than this are refused (400) before anything walks them.
LIMRANK_JSON_MAX_DEPTH = env.int("LIMRANK_JSON_MAX_DEPTH", default=32)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
}
