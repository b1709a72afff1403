"""The demo: the whole closed loop on one machine (`cxloop demo`, docs/demo.md).

It starts, in this process:
- the Salesforce emulator (sfemu) with its default org `acme`, logging in by itself as
  integration@example.com;
- the mail catcher (SMTP and a web view of what it caught);
- cxloop itself, on SQLite in a fresh data directory, with its worker and scheduler;

then seeds, through cxloop's services and API: a demo admin with an API token, an NPS + CSAT
survey, a connection "Acme (emulator)" linked by the real OAuth flow, the two workflows of the
loop (Case closed → directory task: contact + personal invitation; response → Case updated and
Survey_Response__c upserted) and the emulator's outbound rule pointing at the first workflow.

Without --headless it prints every URL and runs until Ctrl-C. With --headless it drives the loop
itself (close the Case → outbound message → mail → personal link → answers → Case updated) and
prints each step with ✔ or ✘ (or one JSON object with --json); exit 0 only when every step holds.

Its parts: `stack.py` starts and stops the three servers; `seed.py` reads the seed data, YAML
files beside it in `seed/`; `scenario.py` seeds cxloop and drives the loop. The Typer command in
`cxloop.cli.demo` only parses options and prints.
"""

from cxloop.demo.scenario import Demo, Seeded, Step
from cxloop.demo.stack import DemoError, Stack

__all__ = ["Demo", "DemoError", "Seeded", "Stack", "Step"]
