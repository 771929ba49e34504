"""Recommending to people: known users, new people and sessions, over the command line and HTTP.

- :mod:`movierec.serving.served`: one model loaded for serving (run folder, bundle or study folder).
- :mod:`movierec.serving.service`: the answers (recommendations with reasons, title search, similar movies,
  segments) as plain Python, shared by ``movierec recommend`` and the HTTP API.
- :mod:`movierec.serving.batch`: recommendations for many known users at once, to a Parquet file.
- :mod:`movierec.serving.api`: the FastAPI app of ``movierec serve`` and its web page (``static/``).
"""

from movierec.serving.served import Recommendations, ServedModel
from movierec.serving.service import NotFound, Service

__all__ = ["NotFound", "Recommendations", "ServedModel", "Service"]
