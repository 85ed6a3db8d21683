"""The HTTP receiver: a Flask app over `SourceService`, served by gunicorn or on a thread."""

from .app import create_app
from .background import BackgroundReceiver, run_in_background
from .retrying import RetryWorker

__all__ = ["BackgroundReceiver", "RetryWorker", "create_app", "run_in_background"]
