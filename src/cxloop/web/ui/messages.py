"""Service and validation messages on pages, in the page's language.

The services speak English (the API's messages, which stay as they are). A page shows a
service error by its stable `code` (cxloop/errors.py), from the catalogue: in English the
service's own, more specific message is kept; in another language the catalogue's sentence for the
code, for what was not found (NotFound's `subject`), or for the error's kind, never English.
Problems found in a workflow document carry pydantic's error type as their code
(`string_too_short`, `missing`, `literal_error`, ...): pages show the catalogue's sentence for
it, with the field's label, in every language (pydantic's own English is not for people).

tests/unit/test_ui_i18n.py fails when a service raises a code that has no sentence here, or a
NotFound with neither a code nor a subject that has one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from cxloop.errors import CxloopError, NotFound
from cxloop.web.ui.markers import N_

# Each service error code's sentence (a page shows it where the error is about).
SERVICE_MESSAGES: Mapping[str, str] = MappingProxyType(
    {
        "bad_if_match": N_("The If-Match header is not usable."),
        "empty": N_("Nothing was sent."),
        "malformed_body": N_("What was sent cannot be read."),
        "too_large": N_("What was sent is too large."),
        "document_too_large": N_("The document is too large."),
        "draft_expired": N_("The unsaved workflow you were building has expired: start again."),
        "draft_too_large": N_("The workflow's form is too large to keep; save it first."),
        "expired": N_("This has expired."),
        "idempotency_key_reused": N_(
            "This Idempotency-Key was used before for a different request."
        ),
        "invalid_idempotency_key": N_("The Idempotency-Key header is not usable."),
        "keys_do_not_match": N_(
            "This server's encryption keys do not fit the stored secrets. Ask your administrator."
        ),
        "misconfigured": N_("This server is not set up correctly. Ask your administrator."),
        "response_id_taken": N_("This response id belongs to another survey."),
        "unreadable": N_("What was sent cannot be read."),
        "unsupported_media_type": N_("This kind of content is not accepted."),
        "access_denied": N_("Access was not allowed at Salesforce."),
        "admin_only": N_("Only administrators may do this."),
        "already_answered": N_("This survey was answered already."),
        "already_collaborator": N_("This person works on the survey already."),
        "already_owner": N_("This person owns the survey already."),
        "anonymous_link_off": N_("The survey's public link is off."),
        "bad_bootstrap": N_("This link to start linking is not valid. Start again."),
        "bad_client_id": N_("The connected app's consumer key is not usable."),
        "bad_client_secret": N_("The connected app's consumer secret is not usable."),
        "bad_connection_type": N_("Choose the kind of Salesforce org to connect."),
        "bad_credentials": N_("Wrong email or password."),
        "bad_cursor": N_("This page link is not valid any more. Start from the first page."),
        "bad_date": N_("Enter a date like 2026-12-31."),
        "bad_direction": N_("Unknown direction."),
        "bad_email": N_("Enter a valid email address."),
        "bad_expiry": N_("Enter a usable expiry."),
        "bad_format": N_("Unknown format."),
        "bad_frequency_rule": N_("The frequency rule is not usable."),
        "bad_id": N_("This id is not valid."),
        "bad_limit": N_("The number of items per page is not allowed."),
        "bad_login_url": N_("Enter your My Domain login URL, like https://acme.my.salesforce.com."),
        "bad_match_on": N_("Unknown way to match contacts."),
        "bad_name": N_("Enter a name (not too long)."),
        "bad_role": N_("Unknown role: choose editor or viewer."),
        "bad_source": N_("Unknown source."),
        "bad_state": N_(
            "This Salesforce login does not belong to a linking started here. Start again."
        ),
        "bad_status": N_("Unknown status."),
        "bad_token": N_("The token is not valid."),
        "body_too_large": N_("What was sent is too large."),
        "bootstrap_expired": N_("This link to start linking has expired. Start again."),
        "bootstrap_used": N_("This link to start linking was used already. Start again."),
        "concurrent_change": N_(
            "Someone changed this at the same time. Reload the page and try again."
        ),
        "conflict": N_("This clashes with what is stored. Reload the page and try again."),
        "connection_not_found": N_("No such Salesforce account."),
        "connection_unusable": N_("The Salesforce account cannot be used now. Check its setup."),
        "contact_not_found": N_("No such contact."),
        "content_changed": N_("The survey's content changed meanwhile. Reload the page."),
        "email_taken": N_("This email address is in use already."),
        "emulator_refused": N_("The Salesforce emulator refused."),
        "emulator_unreachable": N_("The Salesforce emulator cannot be reached."),
        "error": N_("Something went wrong."),
        "forbidden": N_("You may not do this."),
        "grant_not_found": N_("The account is not allowed for this survey."),
        "host_not_allowed": N_("This Salesforce login address is not allowed."),
        "identity_failed": N_("Salesforce did not say who logged in. Try again."),
        "invalid_contact": N_("The contact is not valid."),
        "invalid_content": N_("The survey's content is not valid."),
        "invalid_email": N_("Enter a valid email address."),
        "invalid_embedded_data": N_("The embedded data is not valid."),
        "invalid_input": N_("The input was refused. Check what you entered."),
        "invalid_qsf": N_("The QSF file cannot be read."),
        "invalid_response": N_("The response is not valid."),
        "keep_not_offered": N_("This choice is not offered."),
        "limit_reached": N_("A limit is reached."),
        "link_expired": N_("The link has expired."),
        "link_invalid": N_("The link is not valid."),
        "linking_failed": N_("Linking the Salesforce account failed. Try again."),
        "malformed_document": N_("The document cannot be read."),
        "malformed_json": N_("The JSON cannot be read."),
        "malformed_yaml": N_("The YAML cannot be read."),
        "name_taken": N_("That name is taken: pick another."),
        "no_code": N_("Salesforce sent no authorization code. Start again."),
        "no_connected_app": N_(
            "No connected app is set up for this Salesforce login. An administrator sets one up."
        ),
        "no_contacts": N_("No contacts."),
        "no_refresh_token": N_(
            "Salesforce gave no refresh token: give the connected app the refresh_token scope."
        ),
        "no_such_revision": N_("No such revision."),
        "not_an_outbound_workflow": N_("This workflow does not start from an outbound message."),
        "not_checked": N_("Not checked."),
        "not_found": N_("Not found, or you may not see it."),
        "not_your_offer": N_("This transfer is not offered to you."),
        "other_org": N_(
            "You logged in to another Salesforce org than the account's. Log in to the same org."
        ),
        "qid_mismatch": N_("The question ids do not match."),
        "redirect_uri_mismatch": N_("The connected app's callback URL does not match cxloop's."),
        "revision_changed": N_(
            "Someone saved a newer revision meanwhile. Open the workflow again."
        ),
        "salesforce_checks_failed": N_("The Salesforce checks found problems. Fix them first."),
        "salesforce_refused": N_("Salesforce refused the login."),
        "signed_link_invalid": N_("The link is not valid."),
        "state_expired": N_("The Salesforce login took too long. Start again."),
        "state_replayed": N_("This Salesforce login was used already. Start again."),
        "survey_closed": N_("The survey is closed."),
        "survey_not_found": N_("No such survey."),
        "survey_not_open": N_("The survey is not open."),
        "token_exchange_failed": N_("Salesforce did not complete the login. Try again."),
        "token_expired": N_("The token has expired."),
        "token_not_found": N_("No such token."),
        "token_revoked": N_("The token was revoked."),
        "too_many_attempts": N_("Too many attempts. Wait a moment, then try again."),
        "too_many_connections": N_(
            "You have as many Salesforce accounts as allowed. Remove one first."
        ),
        "too_many_items": N_("Too many items at once."),
        "too_many_submissions": N_("Too many submissions. Wait a moment."),
        "transfer_expired": N_("The transfer has expired."),
        "transfer_not_found": N_("No such transfer."),
        "transfer_not_pending": N_("The transfer is not waiting any more."),
        "transfer_outdated": N_("The transfer is out of date."),
        "transfer_pending": N_("A transfer is waiting already."),
        "unauthenticated": N_("Please log in."),
        "unknown_format": N_("Unknown file format."),
        "user_inactive": N_("This user is deactivated."),
        "user_not_found": N_("No user with this email. Create the user first."),
        "wrong_browser": N_("Linking completes only in the browser that started it."),
        "wrong_user": N_("Linking completes only for the person who started it."),
    }
)
# What a page says of a NotFound without a code of its own, by its `subject` (the reply's code
# stays "not_found"; tests/unit/test_ui_i18n.py fails on a NotFound raised without either).
NOT_FOUND_MESSAGES: Mapping[str, str] = MappingProxyType(
    {
        "collaborator": N_("This person does not work on the survey."),
        "connection": N_("Salesforce account not found."),
        "contact": N_("Contact not found."),
        "directory": N_("Directory not found."),
        "distribution": N_("Distribution not found."),
        "draft": N_("This unsaved workflow is not kept in this browser."),
        "linking_attempt": N_("This linking was not found. Start again."),
        "mailing_list": N_("Mailing list not found."),
        "question": N_("Question not found."),
        "refresh_token": N_("The Salesforce account has no refresh token. Connect it again."),
        "response": N_("Response not found."),
        "run": N_("Run not found."),
        "survey": N_("Survey not found."),
        "workflow": N_("Workflow not found."),
    }
)
# A validation problem's sentence by pydantic's error type; %(field)s is the field's label.
PROBLEM_MESSAGES: Mapping[str, str] = MappingProxyType(
    {
        "task_id_pattern": N_(
            "%(field)s must start with a letter, then up to 39 letters, digits, '_' or '-'."
        ),
        "api_name_pattern": N_(
            "%(field)s must be a Salesforce API name: a letter, then letters, digits or '_'."
        ),
        "model_type": N_("%(field)s must be a mapping (an object)."),
        "model_attributes_type": N_("%(field)s must be a mapping (an object)."),
        "dict_type": N_("%(field)s must be a mapping (an object)."),
        "missing": N_("%(field)s is required."),
        "string_too_short": N_("%(field)s needs at least %(min_length)s character(s)."),
        "string_too_long": N_("%(field)s may have at most %(max_length)s characters."),
        "too_short": N_("%(field)s needs at least %(min_length)s item(s)."),
        "too_long": N_("%(field)s may have at most %(max_length)s items."),
        "literal_error": N_("%(field)s must be one of: %(expected)s."),
        "enum": N_("%(field)s must be one of: %(expected)s."),
        "string_type": N_("%(field)s must be text."),
        "int_type": N_("%(field)s must be a whole number."),
        "int_parsing": N_("%(field)s must be a whole number."),
        "bool_type": N_("%(field)s must be true or false."),
        "bool_parsing": N_("%(field)s must be true or false."),
        "list_type": N_("%(field)s must be a list."),
        "greater_than_equal": N_("%(field)s must be at least %(ge)s."),
        "greater_than": N_("%(field)s must be more than %(gt)s."),
        "less_than_equal": N_("%(field)s must be at most %(le)s."),
        "less_than": N_("%(field)s must be less than %(lt)s."),
        "extra_forbidden": N_("%(field)s is not a field of this part."),
    }
)

Translate = Callable[..., str]


def service_message(gettext: Translate, lang: str, error: CxloopError) -> str:
    """What a page says about a service's error: in English the error's own message; in
    another language never English: the sentence for its code, else for what was not found
    (NotFound's subject), else for its kind (a plain Conflict: "conflict"). An error a page
    made in its own language (`localized`) is shown as it is."""
    if lang == "en" or error.localized:
        return error.message
    return gettext(sentence_for(error))


def sentence_for(error: CxloopError) -> str:
    """The catalogue's (English) sentence for `error`, to translate."""
    if isinstance(error, NotFound) and error.code == NotFound.code:
        subject_sentence = NOT_FOUND_MESSAGES.get(error.subject or "")
        if subject_sentence:
            return subject_sentence
    if error.code in SERVICE_MESSAGES:
        return SERVICE_MESSAGES[error.code]
    # A code with no sentence of its own: the sentence of the nearest kind that has one.
    for kind in type(error).__mro__:
        code = getattr(kind, "code", None)
        if code in SERVICE_MESSAGES:
            return SERVICE_MESSAGES[code]
    return SERVICE_MESSAGES["error"]


def problem_message(
    gettext: Translate, code: str, params: Mapping[str, Any], field: str
) -> str | None:
    """A validation problem in words, with the field's label; None for a code we have no
    sentence for (the problem's own message is shown then)."""
    sentence = PROBLEM_MESSAGES.get(code)
    if sentence is None:
        return None
    values = {k: _value(v) for k, v in params.items()}
    values.setdefault("min_length", "1")
    values.setdefault("max_length", "")
    values.setdefault("expected", "")
    for bound in ("ge", "gt", "le", "lt"):
        values.setdefault(bound, "")
    return gettext(sentence, field=field or gettext("This field"), **values)


def _value(value: Any) -> str:
    return str(value) if isinstance(value, str | int | float) else ""
