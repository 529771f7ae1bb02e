"""Import every model so Base.metadata is complete (Alembic, tests)."""

from geo_core.audit.models import AuditLog
from geo_core.auth.models import AuthSession
from geo_core.devices.models import Device
from geo_core.dictionary.models import DictItem, DictType
from geo_core.orgs.models import Org
from geo_core.users.models import Menu, Permission, Role, User

__all__ = ["AuditLog", "AuthSession", "Device", "DictItem", "DictType", "Menu", "Org", "Permission", "Role", "User"]

__all__.append("AdminDivision")
from geo_core.grids.models import Grid, GridMember  # noqa: E402

__all__ += ["Grid", "GridMember"]
from geo_core.pois.models import Poi  # noqa: E402

__all__ += ["Poi"]
from geo_core.grids.staffing_models import GridAssignment, GridAssistant, Handover  # noqa: E402

__all__ += ["GridAssignment", "GridAssistant", "Handover"]
from geo_core.grids.rating import GridRating, RatingScheme  # noqa: E402

__all__ += ["GridRating", "RatingScheme"]
from geo_core.watch.models import WatchItem  # noqa: E402

__all__ += ["WatchItem"]
from geo_core.customers.models import Customer  # noqa: E402

__all__ += ["Customer"]
from geo_core.customers.lists_models import (  # noqa: E402
    CustomerImportBatch,
    CustomerImportFile,
    CustomerListEntry,
    CustomerListTemplate,
)

__all__ += ["CustomerImportBatch", "CustomerImportFile", "CustomerListEntry", "CustomerListTemplate"]
