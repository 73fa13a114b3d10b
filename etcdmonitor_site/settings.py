"""The one settings file of etcdmonitor.

Everything comes from the environment (or a `.env` file at the project root) through
django-environ. The variable names are the configuration contract in the README; `.env.example`
lists each with its default. With no environment at all the app runs in *embedded mode*: SQLite
under DATA_DIR, a secret key generated once into DATA_DIR, and the periodic jobs run in-process.

Importing this module reads the environment and writes nothing: DATA_DIR is created at start-up
(etcdmonitor_site.apps) and its files on first use (etcdmonitor_site.datadir); values that make
no sense are reported by system checks (etcdmonitor_site.checks and each app's checks.py).
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.functional import lazy

from etcdmonitor_site import __version__
from etcdmonitor_site.datadir import embedded_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")

APP_VERSION = __version__

# --- runtime files -------------------------------------------------------------------------------
# Created owner-only at start-up (etcdmonitor_site.apps): it holds the initial admin password.
DATA_DIR = Path(env.str("DATA_DIR", default="./data")).expanduser().resolve()

# --- Celery / embedded mode ----------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
EMBEDDED_MODE = not CELERY_BROKER_URL
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=CELERY_BROKER_URL or None)
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_ALWAYS_EAGER = EMBEDDED_MODE  # no broker: .delay() runs in the calling process
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_timeout": 5, "socket_connect_timeout": 5}
CELERY_TIMEZONE = "UTC"
# Celery's Django fix-up closes the database connections only every this many tasks (twice
# this many signals) instead of around each one; etcdmonitor_site.celery checks them around
# each task the way Django does around a request.
CELERY_DB_REUSE_MAX = 1000


def _secret_key() -> str:
    from_env = env.str("DJANGO_SECRET_KEY", default="")
    if from_env:
        return from_env
    if not EMBEDDED_MODE:
        # At import, not as a system check: celery workers and beat never run the checks.
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when CELERY_BROKER_URL is set (web, worker and beat "
            "must share one key)"
        )
    # Read (or generated into DATA_DIR) when Django first needs it, not here.
    return lazy(embedded_secret_key, str)(DATA_DIR)


SECRET_KEY = _secret_key()
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# Peers whose X-Forwarded-For is believed when finding the client IP.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])

# --- etcd (the monitored cluster) ----------------------------------------------------------------
ETCD_ENDPOINTS = [
    url.strip().rstrip("/")
    for url in env.str("ETCD_ENDPOINTS", default="http://127.0.0.1:2379").split(",")
    if url.strip()
] or ["http://127.0.0.1:2379"]
ETCD_USERNAME = env.str("ETCD_USERNAME", default="")
ETCD_PASSWORD = env.str("ETCD_PASSWORD", default="")
ETCD_METRICS_PATH = env.str("ETCD_METRICS_PATH", default="/metrics")
# Metrics listeners of their own (etcd --listen-metrics-urls, e.g. kubeadm's :2381): a comma list
# matched to members by host, or one template like http://{host}:2381/metrics. Empty: each
# member's client URL + ETCD_METRICS_PATH.
ETCD_METRICS_URLS = [
    url.strip() for url in env.str("ETCD_METRICS_URLS", default="").split(",") if url.strip()
]
ETCD_TLS_CA_CERT = env.str("ETCD_TLS_CA_CERT", default="")
ETCD_TLS_CERT = env.str("ETCD_TLS_CERT", default="")
ETCD_TLS_KEY = env.str("ETCD_TLS_KEY", default="")
ETCD_TLS_INSECURE_SKIP_VERIFY = env.bool("ETCD_TLS_INSECURE_SKIP_VERIFY", default=False)
ETCD_TLS_SERVER_NAME = env.str("ETCD_TLS_SERVER_NAME", default="")
# How the cluster above (the read-only record `default`) is named and labelled in the clusters
# API and the dashboard: its environment picks its colour (prod, staging, dev or other).
ETCD_CLUSTER_NAME = env.str("ETCD_CLUSTER_NAME", default="default")
ETCD_CLUSTER_ENVIRONMENT = env.str("ETCD_CLUSTER_ENVIRONMENT", default="other")

# --- collector, retention, ops, auth, KV ---------------------------------------------------------
COLLECTOR_INTERVAL = env.int("COLLECTOR_INTERVAL", default=30)
# Latency quantiles (p50/p90/p99) cover this trailing window, like the etcd mixin's rate[5m].
# Shorter than two collection intervals it is raised to that (system check monitoring.W001).
QUANTILE_WINDOW_SECONDS = env.int("QUANTILE_WINDOW_SECONDS", default=300)
# Seconds between health probes (a Status per member): how fast a failure shows.
HEALTH_PROBE_INTERVAL = env.int("HEALTH_PROBE_INTERVAL", default=5)
# Threads per process collecting and probing clusters (each keeps a database connection); a
# dead cluster holds one for its timeouts, never another cluster's round.
MONITOR_CLUSTER_WORKERS = env.int("MONITOR_CLUSTER_WORKERS", default=8)
# With workers, the most clusters in one collection round; a fleet's rounds are spread over
# the first half of the interval. Larger rounds cost less CPU per member (shared queries,
# writes and wake-ups: bench/rounds.py --chunk), smaller ones spread the load more evenly.
MONITOR_ROUND_CLUSTERS = env.int("MONITOR_ROUND_CLUSTERS", default=100)
RETENTION_DAYS = env.int("RETENTION_DAYS", default=7)
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=7)
# The change journal (journal app): a watcher per monitored cluster storing every KV change.
# Embedded mode: runmonitor starts `manage.py journal` beside the server; with a broker it is a
# process of its own (the `journal` compose service). Off: nothing is watched or stored.
JOURNAL_ENABLED = env.bool("JOURNAL_ENABLED", default=True)
JOURNAL_RETENTION_DAYS = env.int("JOURNAL_RETENTION_DAYS", default=30)
# Values up to this size are stored; larger ones as size and SHA-256 only.
JOURNAL_MAX_VALUE_BYTES = env.int("JOURNAL_MAX_VALUE_BYTES", default=65536)
# Comma-separated key prefixes never journaled, e.g. Kubernetes' /registry/events/.
JOURNAL_EXCLUDE_PREFIXES = [p for p in env.list("JOURNAL_EXCLUDE_PREFIXES", default=[]) if p]
# /healthz reuses its checks' result for this long per process (0: check on every request).
HEALTH_CACHE_SECONDS = env.float("HEALTH_CACHE_SECONDS", default=1.0)
# A validated session is reused this long per process; a revocation made in another process
# (logout, password change) is honoured there within this delay. 0 checks the database always.
AUTH_CACHE_SECONDS = env.float("AUTH_CACHE_SECONDS", default=1.0)
# /api/current reuses its answer this long per process (values change once per cycle).
CURRENT_CACHE_SECONDS = env.float("CURRENT_CACHE_SECONDS", default=1.0)
OPS_ENABLED = env.bool("OPS_ENABLED", default=True)
# Every change to an etcd cluster (KV writes, defragment, compact, move-leader, disarm) is
# refused, admins included; the product's own settings stay writable (etcdmonitor_site.policy).
READ_ONLY = env.bool("READ_ONLY", default=False)
SESSION_TIMEOUT = env.int("SESSION_TIMEOUT", default=3600)
# Django admin sessions live as long as bearer sessions (0 = never: ten years, as the cookie).
SESSION_COOKIE_AGE = (
    SESSION_TIMEOUT if SESSION_TIMEOUT > 0 else 3600 if SESSION_TIMEOUT < 0 else 10 * 365 * 86400
)
LOCKOUT_THRESHOLD = env.int("LOCKOUT_THRESHOLD", default=5)
LOCKOUT_DURATION_SECONDS = env.int("LOCKOUT_DURATION_SECONDS", default=900)
MIN_PASSWORD_LENGTH = env.int("MIN_PASSWORD_LENGTH", default=8)
# Sign-in throttles beyond the per username x address lock above (accounts.services): failures
# from one address over any usernames, failures on one username from every address (then one
# attempt per slow-down interval), and failures of everyone per minute.
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", default=30)
LOGIN_USER_FAILURE_LIMIT = env.int("LOGIN_USER_FAILURE_LIMIT", default=20)
LOGIN_USER_SLOWDOWN_SECONDS = env.int("LOGIN_USER_SLOWDOWN_SECONDS", default=10)
LOGIN_GLOBAL_FAILURES_PER_MINUTE = env.int("LOGIN_GLOBAL_FAILURES_PER_MINUTE", default=120)
# Password hashes computed at once per process; each Argon2 check takes ~100 MiB and a core.
PASSWORD_HASH_CONCURRENCY = env.int("PASSWORD_HASH_CONCURRENCY", default=2)
KV_SEPARATOR = env.str("KV_SEPARATOR", default="/")
KV_MAX_VALUE_SIZE = env.int("KV_MAX_VALUE_SIZE", default=2 * 1024 * 1024)
KV_CONNECT_TIMEOUT = env.float("KV_CONNECT_TIMEOUT", default=5)
KV_REQUEST_TIMEOUT = env.float("KV_REQUEST_TIMEOUT", default=30)
# The HTTP server (runmonitor): limits answered in JSON before Django, and Django's thread pool.
# A value of KV_MAX_VALUE_SIZE sent as base64 inside JSON must fit in a request body.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int(
    "REQUEST_BODY_MAX_BYTES", default=max(8 * 1024 * 1024, KV_MAX_VALUE_SIZE * 3)
)
HTTP_MAX_HEADER_BYTES = env.int("HTTP_MAX_HEADER_BYTES", default=64 * 1024)
HTTP_REQUEST_TIMEOUT = env.float("HTTP_REQUEST_TIMEOUT", default=60)
WEB_THREADS = env.int("WEB_THREADS", default=8)
# Live watches (GET /api/kv/v3/watch, server-sent events) run on the event loop and a pool of
# their own, never on WEB_THREADS (etcdmonitor_site/streams.py): per user and per process caps,
# the idle heartbeat, how soon a logged-out session's streams end, a resume's patience after a
# member is lost, and the bytes waiting for a client that does not read (beyond: closed).
WATCH_MAX_PER_USER = env.int("WATCH_MAX_PER_USER", default=4)
WATCH_MAX_STREAMS = env.int("WATCH_MAX_STREAMS", default=64)
WATCH_HEARTBEAT_SECONDS = env.float("WATCH_HEARTBEAT_SECONDS", default=15)
WATCH_SESSION_CHECK_SECONDS = env.float("WATCH_SESSION_CHECK_SECONDS", default=2)
WATCH_RESUME_SECONDS = env.float("WATCH_RESUME_SECONDS", default=10)
WATCH_BUFFER_BYTES = env.int("WATCH_BUFFER_BYTES", default=4 * 1024 * 1024)
# Where KV tabs (and later cluster records) may point: CIDRs and host names, comma-separated;
# empty = anywhere except link-local addresses, which are always refused.
CLUSTER_ENDPOINT_ALLOWLIST = env.list("CLUSTER_ENDPOINT_ALLOWLIST", default=[])
# Base64 of the 32-byte key that encrypts KV tab passwords; empty = DATA_DIR/kv_tabs.key.
KV_TABS_KEY = env.str("KV_TABS_KEY", default="")

# Notifications (issue 20): the outbox's delivery job, its retries and the links in messages.
# The dashboard's URL as its users reach it (links in notifications; empty = no links).
EXTERNAL_URL = env.str("EXTERNAL_URL", default="")
NOTIFICATIONS_DELIVERY_INTERVAL = env.int("NOTIFICATIONS_DELIVERY_INTERVAL", default=5)
NOTIFICATIONS_SEND_TIMEOUT = env.float("NOTIFICATIONS_SEND_TIMEOUT", default=10.0)
# A claimed message is re-sent by another worker after this long (longer than any one send).
NOTIFICATIONS_LEASE_SECONDS = env.int("NOTIFICATIONS_LEASE_SECONDS", default=120)
NOTIFICATIONS_RETRY_BASE_SECONDS = env.int("NOTIFICATIONS_RETRY_BASE_SECONDS", default=10)
NOTIFICATIONS_RETRY_MAX_SECONDS = env.int("NOTIFICATIONS_RETRY_MAX_SECONDS", default=3600)
NOTIFICATIONS_MAX_ATTEMPTS = env.int("NOTIFICATIONS_MAX_ATTEMPTS", default=20)
NOTIFICATIONS_RETENTION_DAYS = env.int("NOTIFICATIONS_RETENTION_DAYS", default=7)
# --- alerting ------------------------------------------------------------------------------------
# Seconds between evaluations of the alert rules (each cluster; a rule's for_seconds counts
# from the first evaluation that saw its condition).
ALERT_EVAL_INTERVAL = env.int("ALERT_EVAL_INTERVAL", default=15)
# Seconds between HashKV consistency checks of every member (the hashkv_mismatch rule).
HASHKV_CHECK_INTERVAL = env.int("HASHKV_CHECK_INTERVAL", default=600)
# Resolved alerts, expired silences and consistency checks are deleted after this many days.
ALERT_RETENTION_DAYS = env.int("ALERT_RETENTION_DAYS", default=30)
# Bearer token Prometheus sends to scrape our own /metrics; empty = loopback clients only.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# Periodic jobs: the one list both schedulers read. Celery beat gets it as CELERY_BEAT_SCHEDULE,
# `runmonitor` in embedded mode runs the same tasks in-process (etcdmonitor_site.scheduler).
PERIODIC_JOBS = {
    "probe-etcd-endpoints": {"task": "monitoring.tasks.probe_etcd_endpoints", "interval": 15},
    "collect-metrics": {"task": "monitoring.tasks.collect_metrics", "interval": COLLECTOR_INTERVAL},
    "probe-health": {"task": "monitoring.tasks.probe_health", "interval": HEALTH_PROBE_INTERVAL},
    "purge-metrics": {"task": "monitoring.tasks.purge_metrics", "interval": 3600},
    "purge-audit-log": {"task": "accounts.tasks.purge_audit_log", "interval": 3600},
    "purge-expired-sessions": {"task": "accounts.tasks.purge_expired_sessions", "interval": 3600},
    "probe-kv-tabs": {"task": "kvmanager.tasks.probe_kv_tabs", "interval": 30},
    "deliver-notifications": {
        "task": "notifications.tasks.deliver_notifications",
        "interval": NOTIFICATIONS_DELIVERY_INTERVAL,
    },
    "purge-notifications": {"task": "notifications.tasks.purge_notifications", "interval": 3600},
    "evaluate-alerts": {"task": "alerts.tasks.evaluate_alerts", "interval": ALERT_EVAL_INTERVAL},
    "check-consistency": {
        "task": "alerts.tasks.check_consistency",
        "interval": HASHKV_CHECK_INTERVAL,
    },
    "purge-alerts": {"task": "alerts.tasks.purge_alerts", "interval": 3600},
    "purge-journal": {"task": "journal.tasks.purge_journal", "interval": 3600},
}
# Celery's persistent scheduler without its busy wait before each due job.
CELERY_BEAT_SCHEDULER = "etcdmonitor_site.celery:SteadyScheduler"
CELERY_BEAT_SCHEDULE = {
    name: {
        "task": job["task"],
        "schedule": float(job["interval"]),
        # A backlog never runs stale twice: a queued run expires before the next one is due.
        # Nobody reads a periodic run's result: unasked, the worker stores and publishes each
        # one in Redis, and beat subscribes to each one's channel as it sends the task.
        "options": {"expires": max(1.0, job["interval"] * 0.9), "ignore_result": True},
    }
    for name, job in PERIODIC_JOBS.items()
}

# --- Django --------------------------------------------------------------------------------------
INSTALLED_APPS = [
    "etcdmonitor_site",  # DATA_DIR at start-up, the site-wide system checks
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "accounts",
    "audit",
    "monitoring",
    "clusters",
    "kvmanager",
    "ops",
    "notifications",
    "alerts",
    "journal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "etcdmonitor_site.middleware.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "etcdmonitor_site.urls"
WSGI_APPLICATION = "etcdmonitor_site.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'etcdmonitor.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the dashboard read while the in-process collector writes.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
else:
    # Five minutes: a worker's collection and probe threads each keep one connection, and at
    # 60 s their reconnects were a visible share of the workers' CPU (bench/fleet.py profile).
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=300)
    # A restarted PostgreSQL must not leave dead persistent connections behind; our backend
    # skips the check for a connection that served a request within the last second.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["ENGINE"] = "etcdmonitor_site.pgbackend"
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
# Every password set (bootstrap, change, create, reset, the Django admin) passes these
# (accounts.services.password_policy_check); the length follows MIN_PASSWORD_LENGTH.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "accounts.validators.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The Django admin's login obeys the same lockout and forced-change rules as /api/auth/login.
AUTHENTICATION_BACKENDS = ["accounts.backends.LockoutModelBackend"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
# Serve straight from the app folders too, so `make run` needs no collectstatic step.
WHITENOISE_USE_FINDERS = True

# --- security headers (the reference's set; cookies/HSTS switchable for HTTPS deployments) -------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https")
    if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False)
    else None
)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=False)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["etcdmonitor_site.policy.RoutePolicy"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["etcdmonitor_site.parsers.SafeJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "etcdmonitor_site.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    # `?format=` is ours (e.g. the audit log's CSV export), not DRF's renderer switch.
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "etcdmonitor API",
    "DESCRIPTION": "Health, keyspace and maintenance of an etcd cluster.",
    "VERSION": APP_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["etcdmonitor_site.policy.RoutePolicy"],
}

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR"},  # our exception handler logs API failures itself
        "grpc": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
    },
}
