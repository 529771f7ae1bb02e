"""Customer lists (名单): templates, uploads, preview with per-row errors, and the one-transaction import.

This module is the facade: the code lives in
- geo_core.customers.list_templates - templates (fields, `maps_to`, dictionary/regex rules) and the blank file;
- geo_core.customers.list_reader - reading an upload (CSV / XLSX via geo_core.tabular), sealing, header mapping;
- geo_core.customers.list_validation - per-row parsing and checks, matching to existing customers;
- geo_core.customers.list_batches - batches: upload, validate, preview, search, rename, delete, submit, entries;
- geo_core.customers.list_import - the import run by jobs/customer_imports.py;
and every public name is re-exported here, so `from geo_core.customers import lists` keeps working.

A template lists the columns of a list file - type, required, dictionary, regex, unique key - and the customer
column each one fills (`maps_to`; none = an extra attribute kept on the list entry). An upload is stored
SM4-sealed next to its batch. `validate_rows` checks every row (identifier checksums, duplicates within the file,
owners and orgs inside the importer's scope) and matches rows to existing customers by blind index (ID number /
credit code, then customer number, then phone). `import_batch` - run by the RQ job - validates again and writes
everything in the caller's one transaction: new customers through a COPY-fed staging table, then the list
entries; all rows or none, unless `skip_invalid`. The job holds an advisory lock on the batch for as long as its
transaction lives, so a batch left "running" by a killed worker is recognisable (`refresh_liveness`).
"""

from __future__ import annotations

from geo_core.customers.list_batches import (
    ENTRY_SQL,
    KILLED,
    LOCK_CLASS,
    OPEN_STATUSES,
    batch_table,
    delete_batch,
    get_batch,
    list_batches,
    list_entries,
    preview_batch,
    refresh_liveness,
    rename_batch,
    select_batches,
    set_job,
    submit_batch,
    upload_batch,
    validate_batch,
)
from geo_core.customers.list_import import (
    CHUNK,
    INSERT_CUSTOMERS_SQL,
    INSERT_ENTRIES_SQL,
    PLACE_SQL,
    STAGE_COLUMNS,
    STAGE_DDL,
    Progress,
    batch_summary,
    import_batch,
    load_actor,
    mark_failed,
    mark_running,
    write_rows,
)
from geo_core.customers.list_reader import (
    FILE_AAD,
    MAX_IMPORT_BYTES,
    MAX_IMPORT_ROWS,
    map_header,
    read_table,
    seal,
    unseal,
)
from geo_core.customers.list_templates import (
    CHOICES,
    EXTRA_MAX_LENGTH,
    FIELD_TYPES,
    KEY_RE,
    MAPS_TO,
    MAX_FIELD_LENGTH,
    UNIQUE_COLUMNS,
    FieldSpec,
    TemplateSpec,
    blank_file,
    check_template,
    create_template,
    delete_template,
    get_template,
    list_templates,
    update_template,
    value_of,
)
from geo_core.customers.list_validation import (
    DATE_FORMATS,
    MATCH_SQL,
    MAX_STORED_ERRORS,
    PHONE_SQL,
    RowResult,
    Validation,
    validate_rows,
)
from geo_core.users.job_actor import (
    acting_as,
)

__all__ = [
    "CHOICES", "CHUNK", "DATE_FORMATS", "ENTRY_SQL", "EXTRA_MAX_LENGTH", "FIELD_TYPES", "FILE_AAD", "FieldSpec",
    "INSERT_CUSTOMERS_SQL", "INSERT_ENTRIES_SQL", "KEY_RE", "KILLED", "LOCK_CLASS", "MAPS_TO", "MATCH_SQL",
    "MAX_FIELD_LENGTH", "MAX_IMPORT_BYTES", "MAX_IMPORT_ROWS", "MAX_STORED_ERRORS", "OPEN_STATUSES", "PHONE_SQL",
    "PLACE_SQL", "Progress", "RowResult", "STAGE_COLUMNS", "STAGE_DDL", "TemplateSpec", "UNIQUE_COLUMNS",
    "Validation", "acting_as", "batch_summary", "batch_table", "blank_file", "check_template", "create_template",
    "delete_batch", "delete_template", "get_batch", "get_template", "import_batch", "list_batches", "list_entries",
    "list_templates", "load_actor", "map_header", "mark_failed", "mark_running", "preview_batch", "read_table",
    "refresh_liveness", "rename_batch", "seal", "select_batches", "set_job", "submit_batch", "unseal",
    "update_template", "upload_batch", "validate_batch", "validate_rows", "value_of", "write_rows",
]
