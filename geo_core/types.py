"""Column types SQLAlchemy lacks."""

from __future__ import annotations

from sqlalchemy.types import UserDefinedType


class Ltree(UserDefinedType):
    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "LTREE"

    def bind_processor(self, dialect):  # noqa: ANN001, ANN201
        return None

    def result_processor(self, dialect, coltype):  # noqa: ANN001, ANN201
        return None
