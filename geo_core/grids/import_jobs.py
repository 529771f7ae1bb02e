"""Background grid imports: who the import acts for.

A large grid file (more than `files.MAX_FEATURES` features, up to `files.MAX_JOB_FEATURES`) is imported by an
RQ job (`jobs.grids.import_grid_file`) instead of the request. The job acts as the user who uploaded it, with
his current roles and data scope, so the same rules apply as in the request (org and parent in his scope,
every topology rule, all rows or none).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from geo_core.scope import Principal
from geo_core.users.job_actor import load_job_actor


def load_importer(session: Session, user_id: int | None) -> Principal:
    """The uploader as a principal; he must still be active and hold grid:import (read in an elevated session)."""
    return load_job_actor(session, user_id, permission="grid:import", inactive="导入人账户不存在或已停用",
                          inactive_code="IMPORTER_INACTIVE", denied="导入人已没有导入网格的权限")
