"""WSGI entry point: `gunicorn -c config/gunicorn.conf.py app:app`."""

from dtesn.web import create_app

app = create_app()
