"""Optional dependencies: import them on first use with a one-line hint naming the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from movierec.errors import MovieRecError

_EXTRA = {"matplotlib": "study", "seaborn": "study", "jinja2": "study", "sklearn": "study", "fastapi": "serve",
          "uvicorn": "serve", "httpx": "serve", "sqlalchemy": "serve", "psycopg": "serve"}


def require(module: str) -> ModuleType:
    """Import ``module`` or raise a MovieRecError that says which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = _EXTRA.get(module.split(".")[0], "study")
        raise MovieRecError(f"{module} is not installed; install it with: pip install 'movierec[{extra}]'") from None


def pyplot() -> ModuleType:
    """matplotlib.pyplot on the non-interactive Agg backend (no display needed)."""
    matplotlib = require("matplotlib")
    matplotlib.use("Agg", force=True)
    return require("matplotlib.pyplot")


def template(name: str):
    """A jinja2 template from ``movierec/templates`` with HTML autoescaping."""
    jinja2 = require("jinja2")
    env = jinja2.Environment(loader=jinja2.PackageLoader("movierec", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    return env.get_template(name)
