import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "limrank_app.settings")
application = get_asgi_application()

from limrank_app.checks import startup_refuse_insecure  # noqa: E402

startup_refuse_insecure()  # DEBUG=false without SECRET_KEY: refuse to serve
