"""Settings of the reviews example: no database; aiweb's address, key and webhook secret
come from the environment."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = ["reviews"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "reviews_site.urls"
WSGI_APPLICATION = "reviews_site.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.csrf"]},
    }
]
DATABASES: dict[str, dict[str, str]] = {}  # none needed
USE_TZ = True

# aiweb
AIWEB_URL = os.environ.get("AIWEB_URL", "http://127.0.0.1:8000")
AIWEB_API_KEY = os.environ.get("AIWEB_API_KEY", "")
AIWEB_SENTIMENT_MODEL = os.environ.get("AIWEB_SENTIMENT_MODEL", "sentiment")
AIWEB_RECOMMENDER = os.environ.get("AIWEB_RECOMMENDER", "shows")
AIWEB_WEBHOOK_SECRET = os.environ.get("AIWEB_WEBHOOK_SECRET", "")
#: received webhook events, one JSON object a line (de-duplicated on the event id)
AIWEB_EVENTS_FILE = Path(os.environ.get("AIWEB_EVENTS_FILE", BASE_DIR / "events.jsonl"))
