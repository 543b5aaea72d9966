"""Settings, read from environment variables with safe local defaults.

The embedded default (no variables set) is a SQLite file and in-process jobs under
./var, so a new user's first command works. Production sets DATABASE_URL,
CELERY_BROKER_URL and a SECRET_KEY; a bad value stops start-up with a clear error.
"""

from __future__ import annotations

import ipaddress
import math
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from workers.ml.freeze import FreezePolicy  # pure: the policy's defaults

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true or false)")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum {minimum}")
    return value


def env_float(
    name: str,
    default: float,
    *,
    minimum: float = -math.inf,
    maximum: float = math.inf,
) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if not minimum <= value <= maximum:
        raise ImproperlyConfigured(
            f"{name}={value} is outside the range {minimum} to {maximum}"
        )
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)
VAR_DIR = Path(os.environ.get("GOVERNANCE_VAR_DIR", BASE_DIR / "var"))

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    # Only for local development; production refuses to start without a key.
    SECRET_KEY = "insecure-local-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "governance.apps.GovernanceAdminConfig",  # django.contrib.admin, our site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "governance",
    "reports",
    "axes",  # admin login lockout: see "Login lockout" below
]

MIDDLEWARE = [
    # Before SecurityMiddleware, which reads X-Forwarded-Proto (governance/http.py).
    "governance.http.TrustedProxyMiddleware",
    "governance.http.SecurityHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Before anything decodes a body: CsrfViewMiddleware reads request.POST.
    "governance.http.Utf8OnlyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: a locked-out login becomes its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "governance.urls"
WSGI_APPLICATION = "governance.wsgi.application"

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

# --- Database -----------------------------------------------------------------
DATABASE_URL = os.environ.get(
    "DATABASE_URL", f"sqlite:///{VAR_DIR / 'governance.sqlite3'}"
)
try:
    _database = dj_database_url.parse(DATABASE_URL, conn_max_age=60)
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from None
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock up front, so two writers queue
    # instead of failing half-way with "database is locked"; the audit chain
    # relies on writers being serialised.
    _database["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
    _database["CONN_MAX_AGE"] = 0
    # A file (not :memory:) so a worker process can share the test database.
    # One file per test run, so concurrent runs on one machine do not collide.
    _database["TEST"] = {
        "NAME": str(VAR_DIR / f"test-governance-{os.getpid()}.sqlite3")
    }
    # The embedded default must work on a fresh clone: create its folder.
    Path(_database["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    VAR_DIR.mkdir(parents=True, exist_ok=True)
elif _database["ENGINE"] == "django.db.backends.postgresql":
    _database["CONN_HEALTH_CHECKS"] = True
else:
    raise ImproperlyConfigured(
        f"DATABASE_URL engine {_database['ENGINE']} is not supported "
        "(use sqlite:/// or postgres://)"
    )
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation."
        "UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
# The languages of the public pages and of the person's explanation, chosen by the
# person and stored on the request. Adding one: a tuple here, a catalogue under
# locale/<code>/LC_MESSAGES/ (makemessages, compilemessages), a migration for the
# request's language choices. The admin stays in LANGUAGE_CODE (no LocaleMiddleware).
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "media/"  # never served directly: downloads go through permission checks

# Uploads: Django's own cap on request bodies, and the product's cap on dataset files.
DATASET_MAX_BYTES = env_int("DATASET_MAX_BYTES", 200 * 1024 * 1024, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# The cap handler refuses a multipart body over DATASET_MAX_BYTES (plus the spec)
# before reading any of it; the other two are Django's defaults.
FILE_UPLOAD_HANDLERS = [
    "governance.http.UploadCapHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# --- Dataset import limits (hostile specs and files) -------------------------------
# A spec is bounded before it is parsed; a CSV's header is read (at most
# DATASET_MAX_HEADER_BYTES) and its columns counted before the body is read.
DATASET_SPEC_MAX_BYTES = env_int("DATASET_SPEC_MAX_BYTES", 256 * 1024, minimum=1024)
DATASET_MAX_COLUMNS = env_int("DATASET_MAX_COLUMNS", 500, minimum=2)
DATASET_MAX_HEADER_BYTES = env_int("DATASET_MAX_HEADER_BYTES", 64 * 1024, minimum=1024)
# Any other line: csv holds a whole record in memory, field by field.
DATASET_MAX_LINE_BYTES = env_int("DATASET_MAX_LINE_BYTES", 1024 * 1024, minimum=1024)
# Data files a spec names must be regular files inside the spec's own folder or one
# of these (absolute, comma-separated); the shipped specs read from ./data.
DATASET_ALLOWED_ROOTS = [
    Path(item) for item in env_list("DATASET_ALLOWED_ROOTS", [str(BASE_DIR / "data")])
]
for _root in DATASET_ALLOWED_ROOTS:
    if not _root.is_absolute():
        raise ImproperlyConfigured(
            f"DATASET_ALLOWED_ROOTS: {str(_root)!r} is not an absolute path"
        )

# --- Cache ------------------------------------------------------------------------
# The public form's rate limit counts in the cache: with several web processes set
# CACHE_URL (redis://...) so they share one count; the default is per process.
CACHE_URL = os.environ.get("CACHE_URL", "")
if CACHE_URL and not CACHE_URL.startswith(("redis://", "rediss://")):
    raise ImproperlyConfigured("CACHE_URL must be a redis:// URL (or unset)")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": CACHE_URL,
    }
    if CACHE_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

# --- Security (production) ----------------------------------------------------
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading is a commitment the operator makes for the whole domain.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# --- Reverse proxy, CSP, login lockout (governance/http.py) ---------------------
# X-Forwarded-Proto and X-Forwarded-For are believed only from these addresses (the
# TLS proxy's, as the app sees it); from anyone else they are dropped, so a client
# cannot claim to be on HTTPS (skipping the redirect) or to be another address.
# Unset: no proxy is trusted.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_address(_proxy)
    except ValueError:
        raise ImproperlyConfigured(
            f"TRUSTED_PROXIES: {_proxy!r} is not an IP address"
        ) from None
if TRUSTED_PROXIES:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
elif env_int("NUM_PROXIES", 0):
    raise ImproperlyConfigured(
        "NUM_PROXIES is set but TRUSTED_PROXIES is not: name the proxies' addresses"
    )
# No inline script anywhere (the admin's included); inline styles stay allowed
# because the admin's templates and Django's own use style attributes.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "camera",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
    )
)
# Login lockout (django-axes): after LOGIN_FAILURE_LIMIT wrong passwords an account
# is locked, from every address, and an address is locked, for every account, for
# LOGIN_LOCKOUT_MINUTES; each lockout is an audit event (governance/lockout.py).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1) / 60  # hours
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# A guess during a lockout does not prolong it: else anyone could keep an officer
# locked out for good by guessing every few minutes.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "governance.http.client_address"
AXES_LOCKOUT_CALLABLE = "governance.lockout.lockout_response"
AXES_VERBOSE = False  # no banner on every manage.py command; lockouts still log

# --- Celery -------------------------------------------------------------------
# Unset broker = the embedded mode: tasks run in-process, in the caller's thread.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", CELERY_BROKER_URL)
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Kombu's filesystem broker: for single-machine checks without Redis
    # (bench/gpu_check.py). The folder must exist.
    _folder = os.environ.get("CELERY_BROKER_FOLDER", str(VAR_DIR / "broker"))
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": f"{_folder}/out",
        "data_folder_out": f"{_folder}/out",
        "processed_folder": f"{_folder}/processed",
        # Else kombu writes its exchange tables to ./control, wherever it runs.
        "control_folder": f"{_folder}/control",
    }
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_WORKER_CORES = env_int("CELERY_WORKER_CORES", os.cpu_count() or 1, minimum=1)

# --- Training -------------------------------------------------------------------
# "auto" uses CUDA where a GPU is present, else the CPU; the device is recorded.
TRAINING_DEVICE = os.environ.get("TRAINING_DEVICE", "auto")
if TRAINING_DEVICE not in {"auto", "cpu", "cuda"}:
    raise ImproperlyConfigured("TRAINING_DEVICE must be auto, cpu or cuda")
TRAINING_EPOCHS = env_int("TRAINING_EPOCHS", 8, minimum=1)
# Hard limit of one fine-tuning task; the soft limit comes a minute earlier.
FINETUNE_TIME_LIMIT_S = env_int("FINETUNE_TIME_LIMIT_S", 3600, minimum=60)

# --- Audit chain (governance/services/audit.py, docs/operations.md) ------------
# The HMAC key over every audit event: held outside the database, so that whoever
# can write the database cannot recompute the chain. Unset: a random key is made
# once in AUDIT_HMAC_KEY_FILE (fine for one machine). Production sets the variable,
# the same on every web and worker machine: machines with keys of their own would
# write events that verify_audit reports as HMAC mismatches.
AUDIT_HMAC_KEY = os.environ.get("AUDIT_HMAC_KEY", "")
if AUDIT_HMAC_KEY and len(AUDIT_HMAC_KEY) < 32:
    raise ImproperlyConfigured("AUDIT_HMAC_KEY must be at least 32 characters")
AUDIT_HMAC_KEY_FILE = Path(
    os.environ.get("AUDIT_HMAC_KEY_FILE", VAR_DIR / "audit-hmac.key")
)
# Append-only file of chain heads, written after each commit and checked by
# verify_audit. Unset: MEDIA_ROOT/audit/anchor.log (MEDIA_ROOT is shared by all
# machines). Keep it out of reach of the database's administrators.
AUDIT_ANCHOR_PATH = os.environ.get("AUDIT_ANCHOR_PATH", "")

# --- Reports --------------------------------------------------------------------
# The controller named in every report (GDPR Art. 13(1)(a), 14(1)(a), 15(1)).
REPORT_CONTROLLER = {
    "name": os.environ.get("CONTROLLER_NAME", "Example Lending Ltd (demo controller)"),
    "contact": os.environ.get("CONTROLLER_CONTACT", "privacy@example.org"),
    "dpo_contact": os.environ.get("CONTROLLER_DPO_CONTACT", "dpo@example.org"),
    "supervisory_authority": os.environ.get(
        "SUPERVISORY_AUTHORITY",
        "the data protection authority of your EU member state of residence, work "
        "or the place of the alleged infringement",
    ),
}
# Where people reach the public pages: links printed by the flow and the API.
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
REPORT_TIME_LIMIT_S = env_int("REPORT_TIME_LIMIT_S", 120, minimum=10)
# The admin's Verify a PDF page refuses a larger upload before reading it.
REPORT_VERIFY_MAX_BYTES = env_int(
    "REPORT_VERIFY_MAX_BYTES", 25 * 1024 * 1024, minimum=1024
)
# A version's evidence bundle: refused, before anything is written, when its
# reports' PDFs together or its audit events are more than this.
EVIDENCE_BUNDLE_MAX_BYTES = env_int(
    "EVIDENCE_BUNDLE_MAX_BYTES", 500 * 1024 * 1024, minimum=1024 * 1024
)
EVIDENCE_BUNDLE_MAX_EVENTS = env_int("EVIDENCE_BUNDLE_MAX_EVENTS", 50_000, minimum=100)
# How long a person's private status link works. It must outlast the longest
# deadline (one month plus a two-month extension) with room to download the answer.
REQUEST_LINK_DAYS = env_int("REQUEST_LINK_DAYS", 180, minimum=100)
# A request drafting for longer than this with no PDF on its way is re-queued.
REQUEST_DRAFT_STALE_MINUTES = env_int("REQUEST_DRAFT_STALE_MINUTES", 10, minimum=1)
# Public request form: at most this many attempts per client address per hour.
REQUEST_RATE_LIMIT_PER_HOUR = env_int("REQUEST_RATE_LIMIT_PER_HOUR", 20, minimum=1)

# --- REST API (governance.api, docs/api.md) ------------------------------------
# Systems authenticate with a token, people with their admin session (CSRF applies).
# Token first: an unauthenticated call gets 401 with `WWW-Authenticate: Token`.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 50, minimum=1),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # \u-escape non-ASCII output: an error that echoes hostile input (a lone
    # surrogate) still encodes, instead of failing the response with a 500.
    "UNICODE_JSON": False,
    # Throttles key on REMOTE_ADDR unless told how many proxies to trust: without
    # this, DRF believes any X-Forwarded-For header, and a guesser sets a new one.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Model governance API",
    "DESCRIPTION": "Log automated decisions, file and follow right-to-explanation "
    "requests, start and follow checks and explanations as jobs, and read model "
    "lineage, a version's checks and approved reports. See docs/api.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ModelVersionStatusEnum": "governance.models.ModelVersion.Status",
        "RequestStatusEnum": "governance.models.ExplanationRequest.Status",
        "ModelVersionKindEnum": "governance.models.ModelVersion.Kind",
        "JobKindEnum": "governance.models.JobKind",
        "JobStateEnum": "governance.models.JobState",
    },
}

# --- Explanations -----------------------------------------------------------------
# Below this agreement with the network, the surrogate's explanations are labelled
# as approximate wherever they are shown.
EXPLAINER_MIN_AGREEMENT = env_float("EXPLAINER_MIN_AGREEMENT", 0.9)
# A counterfactual search runs in a child process killed after this many seconds.
COUNTERFACTUAL_TIME_BUDGET_S = env_float("COUNTERFACTUAL_TIME_BUDGET_S", 5.0)
COUNTERFACTUALS_PER_DECISION = env_int("COUNTERFACTUALS_PER_DECISION", 4, minimum=1)
# The surrogate's factors are shown to a person only when, for that person, its
# score is within this much of the network's (and every shown factor's direction
# is confirmed on the network); otherwise the factors are Shapley values computed
# on the network. workers/ml/explain/faithful.py gives the measurement behind 0.05.
EXPLANATION_SCORE_TOLERANCE = env_float(
    "EXPLANATION_SCORE_TOLERANCE", 0.05, minimum=0.0, maximum=0.5
)
# Factors named to a person, in the chart and in the text alike.
EXPLANATION_TOP_FACTORS = env_int("EXPLANATION_TOP_FACTORS", 6, minimum=1)
# An input that alone predicts a protected attribute's group with at least this
# ROC AUC is a strong proxy: flip-tested in every explanation, named in the dossier
# (workers/ml/explain/protected.py gives the measurement behind 0.8).
PROXY_STRONG_AUC = env_float("PROXY_STRONG_AUC", 0.8, minimum=0.5, maximum=1.0)

# --- Product policy -----------------------------------------------------------
# Thresholds an officer can read in the admin (Policy page) and in each dossier.
GOVERNANCE_POLICY = {
    "freeze_small_target_max_rows": env_int(
        "POLICY_SMALL_TARGET_MAX_ROWS", FreezePolicy.small_target_max_rows
    ),
    "freeze_similar_max_domain_auc": env_float(
        "POLICY_SIMILAR_MAX_DOMAIN_AUC", FreezePolicy.similar_max_domain_auc
    ),
}

# Bias-check gates (workers.ml.fairness.FairnessPolicy), shown in the admin and the
# dossier. A check ends pass / warn / fail; see README "Bias checks".
FAIRNESS_POLICY = {
    "four_fifths_min_ratio": env_float("FAIRNESS_FOUR_FIFTHS_MIN_RATIO", 0.8),
    "dp_difference_warn": env_float("FAIRNESS_DP_DIFFERENCE_WARN", 0.1),
    "dp_difference_fail": env_float("FAIRNESS_DP_DIFFERENCE_FAIL", 0.2),
    "equal_opportunity_difference_warn": env_float("FAIRNESS_EO_DIFFERENCE_WARN", 0.1),
    "equal_opportunity_difference_fail": env_float("FAIRNESS_EO_DIFFERENCE_FAIL", 0.2),
    "equalized_odds_difference_warn": env_float("FAIRNESS_EODDS_DIFFERENCE_WARN", 0.1),
    "equalized_odds_difference_fail": env_float("FAIRNESS_EODDS_DIFFERENCE_FAIL", 0.2),
    "min_group_size": env_int("FAIRNESS_MIN_GROUP_SIZE", 30, minimum=1),
    "confidence": env_float("FAIRNESS_CONFIDENCE", 0.95),
}
FAIRNESS_BOOTSTRAP = env_int("FAIRNESS_BOOTSTRAP", 200, minimum=0)

# --- Decisions at volume (POST /api/decisions/bulk/, manage.py log_decisions) ----
# Rows in one bulk request (each adverse one's factors cost ~3 ms, bench_decisions:
# 500 rows take 1.5-2 s, several times that on loaded cores), and a bulk request's
# body (500 rows of 40 features fit in 2 MiB). A file for log_decisions is bounded
# before it is read.
DECISIONS_BULK_MAX_ROWS = env_int("DECISIONS_BULK_MAX_ROWS", 500, minimum=1)
DECISIONS_BULK_MAX_BYTES = env_int(
    "DECISIONS_BULK_MAX_BYTES", 2 * 1024 * 1024, minimum=1024
)
DECISIONS_FILE_MAX_BYTES = env_int(
    "DECISIONS_FILE_MAX_BYTES", 20 * 1024 * 1024, minimum=1024
)
DECISIONS_FILE_MAX_ROWS = env_int("DECISIONS_FILE_MAX_ROWS", 20_000, minimum=1)
# Queue a decision-explanation job (counterfactuals, flip test) for each adverse
# decision as it is logged. On by default only where workers take jobs: without a
# broker a job runs in the request, and a search takes seconds per person.
DECISION_COUNTERFACTUALS = env_bool(
    "DECISION_COUNTERFACTUALS", not CELERY_TASK_ALWAYS_EAGER
)

# --- Post-market monitoring (AI Act Art. 72) ---------------------------------------
# Outcomes files (manage.py log_outcomes): bounded before a line is read.
OUTCOMES_MAX_BYTES = env_int("OUTCOMES_MAX_BYTES", 20 * 1024 * 1024, minimum=1024)
OUTCOMES_MAX_ROWS = env_int("OUTCOMES_MAX_ROWS", 200_000, minimum=1)
# Each pass looks at the last MONITORING_WINDOW_DAYS of a version's automated
# decisions (the newest MONITORING_MAX_DECISIONS of them); celery beat runs a pass
# every MONITORING_SCHEDULE_S seconds. Fewer decisions (or outcomes) than the
# minimum is "insufficient", never a pass.
MONITORING_WINDOW_DAYS = env_int("MONITORING_WINDOW_DAYS", 30, minimum=1)
MONITORING_SCHEDULE_S = env_int("MONITORING_SCHEDULE_S", 24 * 3600, minimum=60)
MONITORING_MAX_DECISIONS = env_int("MONITORING_MAX_DECISIONS", 50_000, minimum=10)
MONITORING_POLICY = {
    "min_decisions": env_int("MONITORING_MIN_DECISIONS", 200, minimum=10),
    "min_outcomes": env_int("MONITORING_MIN_OUTCOMES", 100, minimum=10),
    # Population stability index of a feature or of the scores: 0.1 / 0.25 are
    # the usual "watch" / "act" lines.
    "psi_warn": env_float("MONITORING_PSI_WARN", 0.1, minimum=0.0),
    "psi_fail": env_float("MONITORING_PSI_FAIL", 0.25, minimum=0.0),
    # A classifier telling live inputs from training rows (0.5 = alike).
    "domain_auc_warn": env_float("MONITORING_AUC_WARN", 0.6, minimum=0.5, maximum=1),
    "domain_auc_fail": env_float("MONITORING_AUC_FAIL", 0.75, minimum=0.5, maximum=1),
    # Change of the adverse-decision rate against the training domain, absolute.
    "adverse_rate_change_warn": env_float(
        "MONITORING_ADVERSE_CHANGE_WARN", 0.05, minimum=0.0, maximum=1.0
    ),
    "adverse_rate_change_fail": env_float(
        "MONITORING_ADVERSE_CHANGE_FAIL", 0.10, minimum=0.0, maximum=1.0
    ),
    # Drops of accuracy and ROC AUC, and rise of calibration error, against the
    # version's held-out rows of its training domain.
    "performance_drop_warn": env_float(
        "MONITORING_PERFORMANCE_DROP_WARN", 0.05, minimum=0.0, maximum=1.0
    ),
    "performance_drop_fail": env_float(
        "MONITORING_PERFORMANCE_DROP_FAIL", 0.10, minimum=0.0, maximum=1.0
    ),
}

# A monitoring report covers the last MONITORING_REPORT_DAYS unless given a
# period; a period is at most MONITORING_REPORT_MAX_DAYS long and holds at most
# MONITORING_REPORT_MAX_RUNS runs (one table row and chart point each).
MONITORING_REPORT_DAYS = env_int("MONITORING_REPORT_DAYS", 90, minimum=1)
MONITORING_REPORT_MAX_DAYS = env_int("MONITORING_REPORT_MAX_DAYS", 400, minimum=1)
MONITORING_REPORT_MAX_RUNS = env_int("MONITORING_REPORT_MAX_RUNS", 500, minimum=1)
if MONITORING_REPORT_DAYS > MONITORING_REPORT_MAX_DAYS:
    raise ImproperlyConfigured(
        "MONITORING_REPORT_DAYS must not be above MONITORING_REPORT_MAX_DAYS"
    )

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        "LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL"
    )
# Libraries narrate their work at INFO (WeasyPrint's "Step 5 - Creating layout",
# the EBM native library's "Booster allocation start"): 150 such lines drowned a
# flow's counted steps. They reach the console only with LOG_LEVEL=DEBUG.
_LIBRARY_LOG_LEVEL = "DEBUG" if LOG_LEVEL == "DEBUG" else "WARNING"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        **{
            name: {"level": _LIBRARY_LOG_LEVEL}
            for name in ("weasyprint", "fontTools", "interpret", "matplotlib", "PIL")
        },
        # In-process jobs (no broker): Celery's "Task ... succeeded" lines and
        # kombu's "No hostname was supplied" say nothing a command's user needs.
        # A real worker keeps them: they are its log.
        **(
            {
                "celery.app.trace": {"level": _LIBRARY_LOG_LEVEL},
                "kombu": {"level": "DEBUG" if LOG_LEVEL == "DEBUG" else "ERROR"},
            }
            if CELERY_TASK_ALWAYS_EAGER
            else {}
        ),
    },
}
