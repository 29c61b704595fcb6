"""``dsnet serve``: an HTTP API and a web page around one :class:`~dsnet.predict.Predictor`.

Needs the ``[serve]`` extra (FastAPI and uvicorn); ``import dsnet`` never imports this package.
"""

from .app import RESPONSE_FORMATS, create_app
from .batcher import Batcher, BatchStats, QueueFull
from .errors import RequestRejected
from .settings import ServeSettings

__all__ = ["RESPONSE_FORMATS", "Batcher", "BatchStats", "QueueFull", "RequestRejected", "ServeSettings", "create_app"]
