"""WSGI entry point of the reviews example."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviews_site.settings")
application = get_wsgi_application()
