"""Tables of workflows and their revisions."""

from __future__ import annotations
