"""`cxloop keys`: encryption keys for secrets at rest."""

from __future__ import annotations

import typer
from cryptography.fernet import Fernet

from cxloop.bootstrap import build_container
from cxloop.cli.context import console, container, fail, refuse_new_database, settings
from cxloop.services import keys as key_service

app = typer.Typer(help="Encryption keys of secrets at rest.", no_args_is_help=True)


@app.command()
def generate() -> None:
    """Print a new encryption key (for CXLOOP_ENCRYPTION_KEYS)."""
    typer.echo(Fernet.generate_key().decode())


@app.command()
def rotate(
    drop_old: bool = typer.Option(
        False, "--drop-old", help="Afterwards keep only the new key (file-managed keys only)."
    ),
) -> None:
    """Re-encrypt every stored secret with a new key.

    With keys in the data directory (the default) a new key is generated and put first. With
    CXLOOP_ENCRYPTION_KEYS, put a new key (`cxloop keys generate`) first there on every process,
    restart them, then run this to re-encrypt with it.
    """
    refuse_new_database(settings(with_secrets=False))
    current = settings()
    file_managed = key_service.keys_file_managed(current)
    if drop_old and not file_managed:
        fail("--drop-old only works with keys in the data directory; edit CXLOOP_ENCRYPTION_KEYS")
    container()  # checks the database is reachable and at the newest schema
    if file_managed:
        key_service.prepend_new_key(current)
    built = build_container(settings())  # with the new key first
    count = key_service.reencrypt_all(built.db)
    if drop_old:
        key_service.write_keys(built.settings, built.settings.fernet_keys()[:1])
    built.close()
    where = "the data directory" if file_managed else "CXLOOP_ENCRYPTION_KEYS"
    console.print(
        f"Re-encrypted {count} rows with the first key of {where}. "
        "Restart every cxloop process so each one knows the new key.",
        highlight=False,
    )
