"""sfemu: a local Salesforce emulator speaking Salesforce wire formats.

Entry points: ``sfemu.app.create_app(settings)`` (the ASGI app), ``sfemu.testing`` (a server
in a thread, an in-process instance, pytest fixtures), ``python -m sfemu serve`` and
``cxloop emulator serve`` (the command line). sfemu never imports cxloop.
"""

from .settings import EmulatorSettings

__all__ = ["EmulatorSettings"]
