"""The ledger: events matched to workflows, runs and task runs written and moved along.

`Ledger` (built by the container, reached as `uow.ledger`) is the one way in; the modules
beside it hold its parts by job: matching, writing, transitions, dispatch, documents.
"""

from cxloop.ledger.ledger import Ledger, ledger_of
from cxloop.ledger.matching import (
    ResponseFacts,
    StartDecision,
    event_field_resolver,
    outbound_conditions_hold,
    response_field_resolver,
    response_metadata,
    response_start_decision,
)
from cxloop.ledger.transitions import run_status, settle_run_status, update_rows
from cxloop.ledger.writing import RunEvent, SalesforceBatchKey, salesforce_batch_key

__all__ = [
    "Ledger",
    "ResponseFacts",
    "RunEvent",
    "SalesforceBatchKey",
    "StartDecision",
    "event_field_resolver",
    "ledger_of",
    "outbound_conditions_hold",
    "response_field_resolver",
    "response_metadata",
    "response_start_decision",
    "run_status",
    "salesforce_batch_key",
    "settle_run_status",
    "update_rows",
]
