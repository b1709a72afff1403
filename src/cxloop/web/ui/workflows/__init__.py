"""A survey's Workflows tab and the workflow builder (create, edit, revisions, YAML, test).

The pages call the same services as the API: the builder turns its form into the workflow
document (`form.document_of`) and saves it with `services.workflows`, whose problems come back
with the document paths the inputs are named by, so each shows beside its input. Buttons that
change the form's shape (add a task, a mapping row, a condition) post the whole form and get it
back with one more part: that works without JavaScript, and htmx only swaps the builder in place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Form, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from cxloop.domain.workflow import DocumentProblem, SalesforceTask
from cxloop.engine.dry_run import dry_run
from cxloop.errors import Conflict, CxloopError, Expired, InvalidInput, NotFound
from cxloop.services import (
    builder_drafts,
    connections,
    doctor,
    surveys,
    workflow_builder,
    workflows,
)
from cxloop.services.access import SurveyAccess
from cxloop.services.task_checks import SaveChecks
from cxloop.web.deps import SESSION_ID_KEY
from cxloop.web.ui.accounts import ACCOUNTS_PATH, refresh_account, with_query
from cxloop.web.ui.accounts import STATUS_LABELS as ACCOUNT_STATUS_LABELS
from cxloop.web.ui.context import Page, error_page, flash, ui_router
from cxloop.web.ui.i18n import N_
from cxloop.web.ui.messages import problem_message
from cxloop.web.ui.workflows import form as wf_form
from cxloop.web.ui.workflows.choices import (
    STATUS_LABELS,
    builder_choices,
    field_label,
    path_label,
)

router = ui_router()

MAX_YAML = 1_000_000
EVENT_LABELS = MappingProxyType(
    {
        "survey_response": N_("Survey response"),
        "salesforce_outbound_message": N_("Salesforce outbound message"),
    }
)
NEW_TASKS: Mapping[str, dict[str, Any]] = MappingProxyType(
    {
        "salesforce": {"type": "salesforce", "action": "insert", "mappings": [{}]},
        "directory": {"type": "directory", "directory": "Default", "match_on": "email"},
        "email": {"type": "email"},
    }
)


# The Workflows tab's fixed words, translated once per page instead of once per row (with 100
# workflows, a template's `_()` for each cell was a fifth of the tab's time).
ROW_WORDS = MappingProxyType(
    {
        "name": N_("Name"),
        "event": N_("Event"),
        "enabled": N_("Enabled"),
        "disabled": N_("Disabled"),
        "save": N_("Save"),
        "revision": N_("Revision"),
        "last_run": N_("Last run"),
        "never": N_("Never"),
        "runs_24h": N_("Runs (24 h)"),
        "failures_24h": N_("Failures (24 h)"),
        "actions": N_("Actions"),
        "open": N_("Open workflow"),
        "revisions": N_("Revisions"),
        "test": N_("Test"),
        "duplicate": N_("Duplicate"),
        "delete": N_("Delete"),
    }
)


def _row_words(page: Page) -> dict[str, Any]:
    """What `_row.html` says, in the page's language: its words, events and statuses."""
    words: dict[str, Any] = {
        key: page._(text).replace(" h)", "\u00a0h)")  # "24 h" is not broken
        for key, text in ROW_WORDS.items()
    }
    words["events"] = {key: page._(text) for key, text in EVENT_LABELS.items()}
    words["statuses"] = {key: page._(text) for key, text in STATUS_LABELS.items()}
    return words


def _base(survey_id: str) -> str:
    return f"/surveys/{survey_id}/workflows"


def _survey_context(page: Page, survey_id: str) -> dict[str, Any]:
    survey = surveys.get_survey(page.db, page.user, survey_id)
    role = workflow_builder.survey_role(page.db, page.user, survey_id)
    return {
        "survey": survey,
        "can_edit": role >= SurveyAccess.EDIT,
        "is_owner": survey.owner_id == page.user.id,
        "section": "surveys",
    }


# --- the tab


@router.get("/surveys/{survey_id}/workflows")
def workflows_tab(survey_id: str, page: Page) -> Response:
    """The survey's workflows with their state and recent runs."""
    context = _survey_context(page, survey_id)
    found = workflows.list_workflows(page.db, page.user, survey_id)
    stats = workflow_builder.run_stats(page.db, page.user, survey_id)
    return page.render(
        "ui/workflows/list.html",
        workflows=found,
        stats=stats,
        words=_row_words(page),
        **context,
    )


@router.post("/surveys/{survey_id}/workflows/{workflow_id}/enabled")
def toggle_enabled(
    survey_id: str,
    workflow_id: str,
    page: Page,
    enabled: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Enable or disable a workflow (the tab's switch; htmx swaps the row)."""
    view = workflows.set_enabled(
        page.db, page.user, workflow_id, enabled in ("on", "true"), survey_id=survey_id
    )
    message = page._("Workflow enabled.") if view.workflow.enabled else page._("Workflow disabled.")
    if page.is_htmx:
        context = _survey_context(page, survey_id)
        stats = workflow_builder.run_stats(page.db, page.user, survey_id)
        return page.render(
            "ui/workflows/_row.html",
            workflow=view.workflow,
            stats=stats,
            words=_row_words(page),
            status_message=message,
            **context,
        )
    return page.redirect(_base(survey_id), message)


@router.get("/surveys/{survey_id}/workflows/{workflow_id}/delete")
def confirm_delete(survey_id: str, workflow_id: str, page: Page) -> Response:
    """Ask before deleting."""
    context = _survey_context(page, survey_id)
    view = workflows.get_workflow(page.db, page.user, workflow_id, survey_id=survey_id)
    if not context["can_edit"]:
        return _forbidden(page)
    return page.render("ui/workflows/delete.html", workflow=view.workflow, **context)


@router.post("/surveys/{survey_id}/workflows/{workflow_id}/delete")
def delete(survey_id: str, workflow_id: str, page: Page) -> Response:
    """Delete a workflow and its revisions."""
    view = workflows.get_workflow(page.db, page.user, workflow_id, survey_id=survey_id)
    workflows.delete_workflow(page.db, page.user, workflow_id, survey_id=survey_id)
    return page.redirect(
        _base(survey_id), page._("Workflow %(name)s deleted.", name=view.workflow.name)
    )


@router.post("/surveys/{survey_id}/workflows/{workflow_id}/duplicate")
def duplicate(survey_id: str, workflow_id: str, page: Page) -> Response:
    """A copy of the workflow under a new name, opened in the builder."""
    view = workflows.get_workflow(page.db, page.user, workflow_id, survey_id=survey_id)
    taken = {w.name for w in workflows.list_workflows(page.db, page.user, survey_id)}
    document = dict(view.workflow.document)
    base = page._("%(name)s (copy)", name=view.workflow.name)[:190]
    name, number = base, 2
    while name in taken:
        name, number = f"{base} {number}", number + 1
    document["name"] = name
    copy = workflows.create_workflow(page.db, page.user, survey_id, document)
    return page.redirect(f"{_base(survey_id)}/{copy.workflow.id}", page._("Workflow duplicated."))


# --- creating: choose the kind and the event


@router.get("/surveys/{survey_id}/workflows/new")
def new_workflow(
    survey_id: str,
    page: Page,
    kind: Annotated[str, Query(max_length=20)] = "",
    event: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """`Create workflow`: first the kind (Event-based) and the event, then the builder."""
    context = _survey_context(page, survey_id)
    if not context["can_edit"]:
        return _forbidden(page)
    if kind == "event" and event in EVENT_LABELS:
        state = {
            "name": "",
            "event": {"type": event, "when": ["created"]},
            "conditions": {"join": "and", "conditions": []},
            "tasks": [],
        }
        return _builder(page, survey_id, context, state, None)
    errors = {}
    if kind or event:
        if kind != "event":
            errors["kind"] = page._("Choose the kind of workflow.")
        if event not in EVENT_LABELS:
            errors["event"] = page._("Choose the event that starts the workflow.")
    return page.render(
        "ui/workflows/new.html",
        errors=errors,
        kind=kind,
        event=event,
        event_labels=EVENT_LABELS,
        status_code=422 if errors else 200,
        **context,
    )


@router.post("/surveys/{survey_id}/workflows/new")
async def post_new(survey_id: str, request: Request, page: Page) -> Response:
    """The builder's form for a workflow not saved yet."""
    return await _post_builder(request, page, survey_id, None)


# --- leaving the builder for an account's page, and coming back to the same form


@router.get("/surveys/{survey_id}/workflows/drafts/{draft_id}")
def open_draft(
    survey_id: str,
    draft_id: str,
    page: Page,
    select: Annotated[str, Query(max_length=200)] = "",
    connected: Annotated[str, Query(max_length=40)] = "",
    renamed_from: Annotated[str, Query(max_length=400)] = "",
    account: Annotated[str, Query(max_length=400)] = "",
) -> Response:
    """The builder as it was when its account menu or **Add account** was used (the form kept
    on the server for this browser: services/builder_drafts.py), with what happened applied:
    a new account (`connected`, from the OAuth callback) chosen in the task that asked for it
    (`select`), a renamed account followed by every part that used its old name. Only the
    owner's accounts can be chosen this way, whatever the link says. A draft that is not this
    browser's, or has expired, is said so on the saved workflow (or the Workflows tab)."""
    context = _survey_context(page, survey_id)
    if not context["can_edit"]:
        return _forbidden(page)
    try:
        draft = builder_drafts.open_draft(
            page.db, page.user, _session_id(page), survey_id, draft_id
        )
    except (NotFound, Expired) as exc:
        message = (
            page._("The unsaved workflow you were building has expired: start again.")
            if isinstance(exc, Expired)
            else page._("This unsaved workflow is not kept in this browser.")
        )
        flash(page.request, message, "error")
        return page.redirect(_base(survey_id))
    saved = None
    if draft.workflow_id:
        saved = workflows.get_workflow(page.db, page.user, draft.workflow_id, survey_id=survey_id)
    state = wf_form.unflatten(draft.pairs)
    if renamed_from and account:
        for part in (state.get("event"), *(state.get("tasks") or [])):
            if isinstance(part, dict) and part.get("connection") == renamed_from:
                part["connection"] = account
    focus = None
    if connected and _is_account_path(select):
        new = next(
            (c for c in workflows.owner_connections(page.db, page.user, survey_id)
             if c.id == connected),
            None,
        )  # fmt: skip
        if new is not None and _get_path(state, select.rpartition(".")[0] or select) is not None:
            _set_path(state, select, new.name)
            focus = select
    document = wf_form.document_of(state)
    flags = _salesforce_flags(page, survey_id, draft.workflow_id, document)
    return _builder(
        page, survey_id, context, state, saved.workflow if saved else None, flags=flags,
        focus=focus, expected_revision=draft.revision, draft=draft,
    )  # fmt: skip


# The account menu's items that leave the builder (Check setup stays: _check_account_inline).
ACCOUNT_VERBS = ("add", "rename", "refresh", "remove")


def _session_id(page: Page) -> str:
    """This browser's web session id (page handlers run only when someone is signed in)."""
    return str(page.request.session.get(SESSION_ID_KEY) or "")


def _is_account_path(path: str) -> bool:
    """`event.connection` or `tasks[N].connection`: where an account is chosen."""
    return path == "event.connection" or (
        path.startswith("tasks[") and path.endswith("].connection") and path[6:-12].isdecimal()
    )


def _leave_for_account(
    page: Page,
    survey_id: str,
    workflow_id: str | None,
    pairs: list[tuple[str, str]],
    revision: str,
    op: str,
) -> Response:
    """**Add account** or an account's ⋯ menu in a Salesforce task: keep the form on the
    server, then go to the accounts page's own form for it (owner only: the handlers refuse
    anyone else's account), which comes back to the builder (`open_draft`) when done."""
    _, verb, target = op.split(":", 2) if op.count(":") >= 2 else ("", "", "")
    if verb not in ACCOUNT_VERBS:
        return page.redirect(_base(survey_id))
    if verb == "add" and not _is_account_path(target):
        return page.redirect(_base(survey_id))
    draft = builder_drafts.keep_draft(
        page.db, page.user, _session_id(page), survey_id, workflow_id, pairs, revision
    )
    back = f"{_base(survey_id)}/drafts/{draft.id}"
    if verb == "add":
        back = with_query(back, select=target)
        return page.redirect(ACCOUNTS_PATH + "/new?" + urlencode({"return_to": back}))
    if verb == "refresh":
        return refresh_account(target, page, return_to=back)
    query = urlencode({"return_to": back})
    return page.redirect(f"{ACCOUNTS_PATH}/{quote(target, safe='')}/{verb}?{query}")


# --- the builder


@router.get("/surveys/{survey_id}/workflows/{workflow_id}")
def open_workflow(survey_id: str, workflow_id: str, page: Page) -> Response:
    """The builder with the workflow's current revision (read-only for viewers)."""
    context = _survey_context(page, survey_id)
    view = workflows.get_workflow(page.db, page.user, workflow_id, survey_id=survey_id)
    state = wf_form.state_of(view.workflow.document)
    flags = _problems_by_path(page, view.warnings)
    if context["can_edit"]:
        flags |= _salesforce_flags(page, survey_id, workflow_id, view.workflow.document)
    return _builder(page, survey_id, context, state, view.workflow, flags=flags)


@router.post("/surveys/{survey_id}/workflows/{workflow_id}")
async def post_workflow(survey_id: str, workflow_id: str, request: Request, page: Page) -> Response:
    """The builder's form for a saved workflow."""
    return await _post_builder(request, page, survey_id, workflow_id)


async def _post_builder(
    request: Request, page: Page, survey_id: str, workflow_id: str | None
) -> Response:
    posted = await request.form()
    pairs = [(k, v) for k, v in posted.multi_items() if isinstance(v, str)]
    op = str(posted.get("op") or "save")
    revision = str(posted.get("revision") or "")
    return await run_in_threadpool(
        _handle_builder, page, survey_id, workflow_id, pairs, op, revision
    )


def _handle_builder(
    page: Page,
    survey_id: str,
    workflow_id: str | None,
    pairs: list[tuple[str, str]],
    op: str,
    revision: str,
) -> Response:
    context = _survey_context(page, survey_id)
    workflow = None
    if workflow_id is not None:
        workflow = workflows.get_workflow(
            page.db, page.user, workflow_id, survey_id=survey_id
        ).workflow
    if not context["can_edit"]:
        return _forbidden(page)
    state = wf_form.unflatten(pairs)
    if op.startswith("account:check:"):
        return _check_account_inline(page, survey_id, context, state, workflow, revision, op)
    if op.startswith("account:"):
        return _leave_for_account(page, survey_id, workflow_id, pairs, revision, op)
    inserts = {k.removeprefix("@insert:"): v for k, v in pairs if k.startswith("@insert:")}
    if op != "save":
        focus = _apply_op(state, op, dict(pairs), inserts)
        document = wf_form.document_of(state)
        flags = _salesforce_flags(page, survey_id, workflow_id, document)
        return _builder(
            page, survey_id, context, state, workflow, flags=flags, focus=focus,
            expected_revision=revision, part=_changed_task(page, op, state),
        )  # fmt: skip
    document = wf_form.document_of(state)
    checks = SaveChecks.of(page.container)
    try:
        if workflow_id is None:
            view = workflows.create_workflow(page.db, page.user, survey_id, document, checks=checks)
        else:
            expected = int(revision) if revision.isdecimal() and len(revision) < 10 else None
            view = workflows.update_workflow(
                page.db, page.user, workflow_id, document, survey_id=survey_id,
                expected_revision=expected, checks=checks,
            )  # fmt: skip
    except InvalidInput as exc:
        errors = _errors_of(page, exc)
        return _builder(
            page, survey_id, context, state, workflow, errors=errors, status_code=422,
            expected_revision=revision,
        )  # fmt: skip
    except Conflict as exc:
        errors = {"": _conflict_message(page, exc, workflow_id, survey_id)}
        if exc.code == "name_taken":
            errors = {"name": page.error_text(exc)}
        return _builder(
            page, survey_id, context, state, workflow, errors=errors, status_code=409,
            expected_revision=revision, stale=exc.code == "revision_changed",
        )  # fmt: skip
    draft_id = dict(pairs).get("draft", "")
    if draft_id:  # saved: the form kept while away on an account's page is done with
        builder_drafts.discard_draft(page.db, page.user, _session_id(page), draft_id[:40])
    message = {
        "created": page._("Workflow saved."),
        "updated": page._("Workflow saved as revision %(n)s.", n=view.workflow.revision),
        "unchanged": page._("Nothing changed: the workflow stays at revision %(n)s.",
                            n=view.workflow.revision),
    }[view.outcome or "created"]  # fmt: skip
    if view.warnings:
        message += " " + page._("Look at the warnings below.")
    return page.redirect(f"{_base(survey_id)}/{view.workflow.id}", message)


# A Salesforce task's own controls: changing one of them changes nothing outside the task.
_TASK_CONTROL = re.compile(
    r"tasks\[(\d{1,3})\]\.(connection|object|action|key_field|mappings\[\d{1,3}\]\.field)"
)


def _changed_task(page: Page, op: str, state: dict[str, Any]) -> int | None:
    """The task whose fieldset is all that a change re-renders, when the builder's script asks
    for a part (`X-Builder-Partial`): a mapping row added or removed, or a Salesforce task's
    account, object, action, key or field changed (`X-Builder-Changed`, the control's path).
    None: the whole form (no script, or a change that reaches beyond one task)."""
    headers = page.request.headers
    if not page.is_htmx or headers.get("x-builder-partial") != "1":
        return None
    verb, _, target = op.partition(":")
    index = None
    if verb in ("add_mapping", "remove_mapping"):
        index = target.partition(".")[0]
    elif verb == "refresh":
        found = _TASK_CONTROL.fullmatch(headers.get("x-builder-changed", "")[:200])
        index = found.group(1) if found else None
    tasks = state.get("tasks") or []
    if index is None or not index.isdecimal() or int(index) >= len(tasks):
        return None
    task = tasks[int(index)]
    return int(index) if isinstance(task, dict) and task.get("type") == "salesforce" else None


def _check_account_inline(
    page: Page,
    survey_id: str,
    context: dict[str, Any],
    state: dict[str, Any],
    workflow: Any,
    revision: str,
    op: str,
) -> Response:
    """**Check setup** in an account's ⋯ menu: the doctor's findings for the account and for
    the task (or event) whose menu it was, shown there with their fix; the form stays as it
    is (nothing is saved). The owner's own accounts only (the doctor refuses any other)."""
    connection_id, _, path = op.removeprefix("account:check:").partition(":")
    if not _is_account_path(path):
        path = ""
    task = _get_path(state, path.rpartition(".")[0]) if path.startswith("tasks[") else None
    specs = []
    if isinstance(task, dict) and task.get("type") == "salesforce":
        try:
            specs = [SalesforceTask.model_validate(wf_form.document_of({"tasks": [task]})
                                                   ["tasks"][0], strict=True)]  # fmt: skip
        except ValidationError:
            specs = []  # not a whole task yet: saving says what is missing
    report = doctor.run(page.container, page.user, connection_id[:40], tasks=specs)
    account = connections.get_connection(page.db, page.user, connection_id[:40])
    document = wf_form.document_of(state)
    flags = _salesforce_flags(page, survey_id, workflow.id if workflow else None, document)
    checked = {"path": path, "account": account, "report": report, "task_checked": bool(specs)}
    return _builder(
        page, survey_id, context, state, workflow, flags=flags,
        focus=f"check-{path or 'none'}", expected_revision=revision, checked=checked,
    )  # fmt: skip


def _conflict_message(page: Page, exc: Conflict, workflow_id: str | None, survey_id: str) -> str:
    if exc.code == "revision_changed":
        return page._(
            "Someone saved a newer revision of this workflow while you were editing, so your "
            "changes were not saved. Look at the revisions, then open the workflow again and "
            "make your changes there."
        )
    return page.error_text(exc)


def _apply_op(
    state: dict[str, Any], op: str, values: dict[str, str], inserts: dict[str, str]
) -> str | None:
    """Change the form's shape as the button asked; returns the input to focus next."""
    tasks = state.setdefault("tasks", [])
    verb, _, target = op.partition(":")
    if verb == "add_task":
        kind = values.get("new_task_type", "")
        if kind in NEW_TASKS:
            used = {t.get("id") for t in tasks if isinstance(t, dict)}
            number = 1
            while f"{kind}{number}" in used:
                number += 1
            task = json.loads(json.dumps(NEW_TASKS[kind])) | {"id": f"{kind}{number}"}
            tasks.append(task)
            return f"tasks[{len(tasks) - 1}].id"
        return "new_task_type"
    if verb in ("remove_task", "move_up", "move_down") and target.isdecimal():
        index = int(target)
        if index < len(tasks):
            if verb == "remove_task":
                tasks.pop(index)
                return "new_task_type"
            other = index - 1 if verb == "move_up" else index + 1
            if 0 <= other < len(tasks):
                tasks[index], tasks[other] = tasks[other], tasks[index]
                return f"tasks[{other}].id"
        return None
    if verb == "add_mapping" and target.isdecimal() and int(target) < len(tasks):
        mappings = tasks[int(target)].setdefault("mappings", [])
        mappings.append({})
        return f"tasks[{target}].mappings[{len(mappings) - 1}].field"
    if verb == "remove_mapping":
        task_index, _, row = target.partition(".")
        if task_index.isdecimal() and row.isdecimal() and int(task_index) < len(tasks):
            mappings = tasks[int(task_index)].get("mappings") or []
            if int(row) < len(mappings):
                mappings.pop(int(row))
        return f"tasks[{task_index}].object"
    if verb in ("add_condition", "add_group", "remove_condition"):
        return _condition_op(state, verb, target)
    if verb == "insert" and target in inserts:
        _set_path(state, target, (_get_path(state, target) or "") + inserts[target])
        return target
    return None


def _condition_op(state: dict[str, Any], verb: str, target: str) -> str | None:
    root = state.setdefault("conditions", {"join": "and", "conditions": []})
    if not isinstance(root, dict):
        root = state["conditions"] = {"join": "and", "conditions": []}
    root.setdefault("join", "and")
    root.setdefault("conditions", [])
    if verb == "remove_condition":
        parent_path, _, index = target.rpartition("[")
        parent = _get_path(state, parent_path)
        index = index.rstrip("]")
        if isinstance(parent, list) and index.isdecimal() and int(index) < len(parent):
            parent.pop(int(index))
        return None
    group = _get_path(state, target) if target else root
    if not isinstance(group, dict):
        return None
    nodes = group.setdefault("conditions", [])
    if verb == "add_group":
        nodes.append({"join": "or", "conditions": [{"operator": "equals"}]})
        return f"{target}.conditions[{len(nodes) - 1}].conditions[0].field"
    nodes.append({"operator": "equals"})
    return f"{target}.conditions[{len(nodes) - 1}].field"


def _get_path(state: Any, path: str) -> Any:
    node = state
    for key in wf_form._keys(path):
        if isinstance(key, int):
            node = node[key] if isinstance(node, list) and key < len(node) else None
        else:
            node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return None
    return node


def _set_path(state: Any, path: str, value: Any) -> None:
    keys = wf_form._keys(path)
    parent = _get_path(state, _path_text(keys[:-1])) if len(keys) > 1 else state
    if isinstance(parent, dict) and isinstance(keys[-1], str):
        parent[keys[-1]] = value


def _path_text(keys: list[str | int]) -> str:
    text = ""
    for key in keys:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else key)
    return text


def _errors_of(page: Page, exc: InvalidInput) -> dict[str, str]:
    """The service's problems by document path, in the page's language: a validation problem
    by its code, with its field's label; any other in the service's words (with its fix)."""
    errors: dict[str, str] = {}
    coded = {(p.path, p.message): p for p in exc.problems if getattr(p, "code", "")}
    details = exc.details if isinstance(exc.details, list) else []
    for detail in details:
        if isinstance(detail, dict) and "message" in detail:
            path = str(detail.get("path") or "")
            message = detail["message"]
            problem = coded.get((path, message))
            if problem is not None:
                params = dict(problem.params)
                label = field_label(page, str(params.pop("name", "")) if problem.code ==
                                    "extra_forbidden" else path)  # fmt: skip
                message = problem_message(page._, problem.code, params, label) or message
            message = page.say(message)  # a Phrase (an owner's connection, ...) in its words
            if detail.get("fix"):
                message += f" {page.say(detail['fix'])}"
            if path in errors:
                errors[path] += f"; {message}"
            else:
                errors[path] = message
    return errors or {"": page.error_text(exc)}


def _problems_by_path(page: Page, problems: list[DocumentProblem]) -> dict[str, str]:
    """Warnings (the Salesforce checks' findings with their fix, ...) by document path, in the
    page's language."""
    flags: dict[str, str] = {}
    for problem in problems:
        text = page.say(problem.message)
        fix = getattr(problem, "fix", "")
        if fix:
            text += f" {page.say(fix)}"
        flags[problem.path] = f"{flags[problem.path]}; {text}" if problem.path in flags else text
    return flags


def _salesforce_flags(
    page: Page, survey_id: str, workflow_id: str | None, document: Any
) -> dict[str, str]:
    """The doctor's findings for the Salesforce tasks, before saving; nothing while the form
    is not yet a sound document (saving then says what is missing)."""
    if not any(isinstance(t, dict) and t.get("type") == "salesforce"
               for t in document.get("tasks") or []):  # fmt: skip
        return {}
    try:
        found = workflows.salesforce_warnings(
            page.db, page.user, document, SaveChecks.of(page.container),
            survey_id=survey_id, workflow_id=workflow_id,
        )  # fmt: skip
    except CxloopError:
        return {}
    return _problems_by_path(page, found)


def _builder(
    page: Page,
    survey_id: str,
    context: dict[str, Any],
    state: dict[str, Any],
    workflow: Any,
    *,
    errors: dict[str, str] | None = None,
    flags: dict[str, str] | None = None,
    focus: str | None = None,
    status_code: int = 200,
    expected_revision: str = "",
    stale: bool = False,
    draft: builder_drafts.Draft | None = None,
    checked: dict[str, Any] | None = None,
    part: int | None = None,
) -> Response:
    """The builder page (the whole form, which htmx swaps in place), or with `part` only that
    task's fieldset, which htmx puts where the old one was (HX-Retarget / HX-Reselect)."""
    choices = builder_choices(page, survey_id, state, context["survey"])
    if part is not None:
        response = page.render(
            "ui/workflows/_task.html", index=part, task=state["tasks"][part],
            count=len(state["tasks"]), errs={}, flags=flags or {}, focus=focus, choices=choices,
            state=state, workflow=workflow, account_status_labels=ACCOUNT_STATUS_LABELS,
            checked=None, **context,
        )  # fmt: skip
        where = f'[id="field-tasks[{part}]"]'
        response.headers.update({"HX-Retarget": where, "HX-Reselect": where,
                                 "HX-Reswap": "outerHTML"})  # fmt: skip
        return response
    errors = dict(errors or {})
    placed = choices.place(errors)
    labels = {anchor: path_label(page, anchor) for anchor in placed if anchor}
    endpoint = None
    if (
        workflow is not None
        and context["can_edit"]
        and (workflow.event_type == "salesforce_outbound_message")
    ):
        try:
            endpoint = workflows.outbound_endpoint(
                page.db, page.user, survey_id, workflow.id,
                base_url=page.container.settings.base_url,
            )  # fmt: skip
        except CxloopError:
            endpoint = None
    action = f"{_base(survey_id)}/{workflow.id}" if workflow else f"{_base(survey_id)}/new"
    revision = expected_revision or (str(workflow.revision) if workflow else "")
    return page.render(
        "ui/workflows/builder.html",
        status_code=200 if page.is_htmx and status_code in (409, 422) else status_code,
        state=state,
        workflow=workflow,
        errors=errors,
        placed=placed,
        labels=labels,
        flags=flags or {},
        focus=focus,
        choices=choices,
        action=action,
        revision=revision,
        stale=stale,
        endpoint=endpoint,
        event_labels=EVENT_LABELS,
        account_status_labels=ACCOUNT_STATUS_LABELS,
        draft=draft,
        checked=checked,
        **context,
    )


def _forbidden(page: Page) -> Response:
    """The 403 page for someone who may look but not change (viewers)."""
    return error_page(
        page.request, 403, "forbidden", page._("Only editors and the owner can change workflows.")
    )


# --- the outbound endpoint


@router.post("/surveys/{survey_id}/workflows/{workflow_id}/outbound/rotate")
def rotate(survey_id: str, workflow_id: str, page: Page) -> Response:
    """A new endpoint URL; the old one stops working at once."""
    workflows.rotate_outbound_token(
        page.db, page.user, survey_id, workflow_id, base_url=page.container.settings.base_url
    )
    return page.redirect(
        f"{_base(survey_id)}/{workflow_id}#endpoint",
        page._("New endpoint URL made: update the Outbound Message in Salesforce."),
    )


# --- revisions and YAML


@router.get("/surveys/{survey_id}/workflows/{workflow_id}/revisions")
def revisions(
    survey_id: str,
    workflow_id: str,
    page: Page,
    from_revision: Annotated[int | None, Query(alias="from", ge=1, le=2**31 - 1)] = None,
    to_revision: Annotated[int | None, Query(alias="to", ge=1, le=2**31 - 1)] = None,
) -> Response:
    """Every revision, and the diff between any two."""
    context = _survey_context(page, survey_id)
    view = workflows.get_workflow(page.db, page.user, workflow_id, survey_id=survey_id)
    found = workflows.list_revisions(page.db, page.user, workflow_id, survey_id=survey_id)
    diff = None
    if from_revision is not None or to_revision is not None:
        diff = workflows.diff_revisions(
            page.db, page.user, workflow_id, from_revision, to_revision, survey_id=survey_id
        )
    return page.render(
        "ui/workflows/revisions.html",
        workflow=view.workflow,
        revisions=list(reversed(found)),
        diff=diff,
        from_revision=from_revision or max(view.workflow.revision - 1, 1),
        to_revision=to_revision or view.workflow.revision,
        **context,
    )


@router.post("/surveys/{survey_id}/workflows/{workflow_id}/revisions/{number}/restore")
def restore(
    survey_id: str,
    workflow_id: str,
    number: int,
    page: Page,
    revision: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    """Save an earlier revision's document as the newest revision."""
    if not 1 <= number < 2**31:
        raise InvalidInput("No such revision.", code="no_such_revision")
    old = workflows.get_revision(page.db, page.user, workflow_id, number, survey_id=survey_id)
    expected = int(revision) if revision.isdecimal() and len(revision) < 10 else None
    try:
        view = workflows.update_workflow(
            page.db, page.user, workflow_id, old.document, survey_id=survey_id,
            expected_revision=expected, checks=SaveChecks.of(page.container),
        )  # fmt: skip
    except Conflict as exc:
        flash(page.request, _conflict_message(page, exc, workflow_id, survey_id), "error")
        return page.redirect(f"{_base(survey_id)}/{workflow_id}/revisions")
    return page.redirect(
        f"{_base(survey_id)}/{workflow_id}",
        page._("Revision %(old)s restored as revision %(n)s.", old=number,
               n=view.workflow.revision),
    )  # fmt: skip


@router.get("/surveys/{survey_id}/workflows/{workflow_id}/yaml")
def yaml_page(survey_id: str, workflow_id: str, page: Page) -> Response:
    """The workflow as YAML: view, download, paste a changed one back."""
    context = _survey_context(page, survey_id)
    view = workflows.get_workflow(page.db, page.user, workflow_id, survey_id=survey_id)
    text = workflows.export_workflow(page.db, page.user, workflow_id, survey_id=survey_id)
    return page.render(
        "ui/workflows/yaml.html", workflow=view.workflow, text=text, errors={},
        revision=str(view.workflow.revision), **context,
    )  # fmt: skip


@router.get("/surveys/{survey_id}/workflows/{workflow_id}/export.yaml")
def download_yaml(survey_id: str, workflow_id: str, page: Page) -> Response:
    """The YAML file, exactly as `cxloop workflows export` writes it."""
    text = workflows.export_workflow(page.db, page.user, workflow_id, survey_id=survey_id)
    return PlainTextResponse(
        text,
        media_type="application/yaml",
        headers={"Content-Disposition": f'attachment; filename="{workflow_id}.yaml"'},
    )


@router.post("/surveys/{survey_id}/workflows/{workflow_id}/yaml")
def paste_yaml(
    survey_id: str,
    workflow_id: str,
    page: Page,
    document: Annotated[str, Form(max_length=MAX_YAML)] = "",
    revision: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    """Save pasted YAML (or JSON) as the next revision, with the same checks as the API."""
    context = _survey_context(page, survey_id)
    view = workflows.get_workflow(page.db, page.user, workflow_id, survey_id=survey_id)
    if not context["can_edit"]:
        return _forbidden(page)
    expected = int(revision) if revision.isdecimal() and len(revision) < 10 else None
    try:
        saved = workflows.update_workflow(
            page.db, page.user, workflow_id, document, survey_id=survey_id,
            expected_revision=expected, checks=SaveChecks.of(page.container),
        )  # fmt: skip
    except (InvalidInput, Conflict, CxloopError) as exc:
        problems = (
            _errors_of(page, exc) if isinstance(exc, InvalidInput) else {"": page.error_text(exc)}
        )
        if isinstance(exc, Conflict) and exc.code == "revision_changed":
            problems = {"": _conflict_message(page, exc, workflow_id, survey_id)}
        lines = [f"{path}: {message}" if path else message for path, message in problems.items()]
        return page.render(
            "ui/workflows/yaml.html", status_code=422, workflow=view.workflow, text=document,
            errors={"document": lines[0] if len(lines) == 1 else page._(
                "%(n)s problems: see below the field.", n=len(lines))},
            problems=lines, revision=revision,
            **context,
        )  # fmt: skip
    return page.redirect(
        f"{_base(survey_id)}/{workflow_id}",
        page._("Workflow saved as revision %(n)s.", n=saved.workflow.revision),
    )


# --- the dry run


@router.get("/surveys/{survey_id}/workflows/{workflow_id}/test")
def test_page(survey_id: str, workflow_id: str, page: Page) -> Response:
    """Pick a response (or type an outbound message's fields) to try the workflow on."""
    return _test(page, survey_id, workflow_id, None, {}, "", "")


@router.post("/surveys/{survey_id}/workflows/{workflow_id}/test")
def run_test(
    survey_id: str,
    workflow_id: str,
    page: Page,
    response_id: Annotated[str, Form(max_length=40)] = "",
    event_fields: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    """`Test`: what each task would send, nothing sent."""
    view = workflows.get_workflow(page.db, page.user, workflow_id, survey_id=survey_id)
    errors: dict[str, str] = {}
    fields: dict[str, str] | None = None
    if view.workflow.event_type == "salesforce_outbound_message":
        fields = {}
        for line in event_fields.splitlines():
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep or not name.strip():
                errors["event_fields"] = page._(
                    "Write one field a line, as Name=value (for example Id=500000000000001)."
                )
                break
            fields[name.strip()] = value.strip()
        if not fields and not errors:
            errors["event_fields"] = page._("Give at least the record's Id, as Id=...")
    elif not response_id:
        errors["response_id"] = page._("Choose a response to try the workflow on.")
    result = None
    if not errors:
        try:
            result = dry_run(
                page.container, page.user, workflow_id,
                None if fields is not None else response_id, event_fields=fields,
            )  # fmt: skip
        except InvalidInput as exc:
            errors["response_id" if fields is None else "event_fields"] = page.error_text(exc)
    return _test(page, survey_id, workflow_id, result, errors, response_id, event_fields)


def _test(
    page: Page,
    survey_id: str,
    workflow_id: str,
    result: dict[str, Any] | None,
    errors: dict[str, str],
    response_id: str,
    event_fields: str,
) -> Response:
    context = _survey_context(page, survey_id)
    view = workflows.get_workflow(page.db, page.user, workflow_id, survey_id=survey_id)
    responses = workflow_builder.recent_responses(page.db, page.user, survey_id)
    shown = None
    if result is not None:
        shown = [
            {**task, "payload": json.dumps(task, indent=2, ensure_ascii=False, default=str)}
            for task in result.get("tasks", [])
        ]
    return page.render(
        "ui/workflows/test.html",
        status_code=422 if errors else 200,
        workflow=view.workflow,
        responses=responses,
        result=result,
        tasks=shown,
        errors=errors,
        response_id=response_id,
        event_fields=event_fields or "Id=",
        **context,
    )
