"""Use cases for responses, one module per job:

- `plan`: the one response plan (documents read, checked, turned into columns) that every way
  in uses: submit, edit, import and the survey pages (`services.respondent`);
- `submit`: responses submitted whole, alone or together (group commit);
- `edit`: read, change and delete one response;
- `export`: lists and streamed exports;
- `importing`: bulk import of rows (files are read by `domain.response_files`);
- `errors`: what refuses a response.

Every write runs the response-event hooks inside its own transaction, before the commit. The
names other modules use are importable from here.
"""

from cxloop.domain.response_files import IMPORT_FORMATS, SourceRow
from cxloop.services.responses.edit import delete_response, get_response, update_response
from cxloop.services.responses.errors import SurveyNotAccepting, check_accepting
from cxloop.services.responses.export import (
    EXPORT_FORMATS,
    ExportFormat,
    ResponseFilter,
    export_responses,
    list_responses,
    response_document,
)
from cxloop.services.responses.importing import (
    MAX_BULK_ITEMS,
    ImportResult,
    RowOutcome,
    import_file,
    import_responses,
    submit_many,
)
from cxloop.services.responses.plan import (
    ImportedDocument,
    ResponseChanges,
    ResponseDocument,
    ResponsePlan,
    Source,
    duration,
    new_response_id,
    parse_document,
    read_document,
)
from cxloop.services.responses.submit import (
    StoredRow,
    Submission,
    submit_response,
    submit_responses,
)

__all__ = [
    "EXPORT_FORMATS",
    "IMPORT_FORMATS",
    "MAX_BULK_ITEMS",
    "ExportFormat",
    "ImportResult",
    "ImportedDocument",
    "ResponseChanges",
    "ResponseDocument",
    "ResponseFilter",
    "ResponsePlan",
    "RowOutcome",
    "Source",
    "SourceRow",
    "StoredRow",
    "Submission",
    "SurveyNotAccepting",
    "check_accepting",
    "delete_response",
    "duration",
    "export_responses",
    "get_response",
    "import_file",
    "import_responses",
    "list_responses",
    "new_response_id",
    "parse_document",
    "read_document",
    "response_document",
    "submit_many",
    "submit_response",
    "submit_responses",
    "update_response",
]
