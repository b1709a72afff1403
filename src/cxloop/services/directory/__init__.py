"""The directory: directories, mailing lists and contacts, one module per job:

- `directories`: directories and their frequency rule;
- `contacts`: contacts (upsert, details with history, change, delete, list, opt out);
- `mailing_lists`: mailing lists and their members;
- `opt_out`: the opt-out page's use cases (the link's signature is in `security`);
- `imports`: contact imports from CSV or JSON-lines files;
- `shared`: the checks and access rules every part uses.

The session-level functions (`directory_of_owner`, `upsert_contact`, `add_to_mailing_list`) run
inside a caller's transaction: the directory task of a workflow calls them while it settles its
task run, and the API calls them through the use cases. Look-ups follow one rule: `get_*` by
id, `find_*_by_name` (or `_by_email`) by what a person types; where a command accepts either,
the command decides (see `cli/contacts.py`). The names other modules use are importable from
here.
"""

from cxloop.services.directory.contacts import (
    ContactDetails,
    InvitationRecord,
    ResponseRecord,
    contact_details,
    create_contact,
    delete_contact,
    find_contact,
    find_contact_by_email,
    get_contact,
    list_contacts,
    set_contact_opt_out,
    update_contact,
    upsert_contact,
)
from cxloop.services.directory.directories import (
    create_directory,
    delete_directory,
    directory_of_owner,
    find_directory_by_name,
    get_directory,
    list_directories,
    update_directory,
)
from cxloop.services.directory.imports import (
    IMPORT_FORMATS,
    MATCH_ON,
    ContactImportResult,
    RowProblem,
    import_contacts,
)
from cxloop.services.directory.mailing_lists import (
    MAX_MEMBERS_PER_REQUEST,
    MailingListInfo,
    add_list_members,
    add_to_mailing_list,
    create_mailing_list,
    delete_mailing_list,
    list_mailing_lists,
    remove_list_members,
)
from cxloop.services.directory.opt_out import (
    OptOutView,
    mask_email,
    opt_out_url,
    opt_out_view,
    opt_out_with_token,
    set_opted_out,
)
from cxloop.services.directory.shared import (
    DEFAULT_DIRECTORY,
    ContactFields,
    clean_contact_fields,
    normalize_email,
)

__all__ = [
    "DEFAULT_DIRECTORY",
    "IMPORT_FORMATS",
    "MATCH_ON",
    "MAX_MEMBERS_PER_REQUEST",
    "ContactDetails",
    "ContactFields",
    "ContactImportResult",
    "InvitationRecord",
    "MailingListInfo",
    "OptOutView",
    "ResponseRecord",
    "RowProblem",
    "add_list_members",
    "add_to_mailing_list",
    "clean_contact_fields",
    "contact_details",
    "create_contact",
    "create_directory",
    "create_mailing_list",
    "delete_contact",
    "delete_directory",
    "delete_mailing_list",
    "directory_of_owner",
    "find_contact",
    "find_contact_by_email",
    "find_directory_by_name",
    "get_contact",
    "get_directory",
    "import_contacts",
    "list_contacts",
    "list_directories",
    "list_mailing_lists",
    "mask_email",
    "normalize_email",
    "opt_out_url",
    "opt_out_view",
    "opt_out_with_token",
    "remove_list_members",
    "set_contact_opt_out",
    "set_opted_out",
    "update_contact",
    "update_directory",
    "upsert_contact",
]
