"""Tables of the ledger: runs, task runs and their attempts."""

from __future__ import annotations
