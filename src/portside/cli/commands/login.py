"""`portside login REGISTRY`: check credentials against the registry and save them."""

from __future__ import annotations

import sys

import click

from portside.cli.commands.image import tls_verify_option


@click.command()
@click.option("--username", "-u", default=None)
@click.option("--password", "-p", default=None)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.option("--get-login", is_flag=True, help="Print the stored user name.")
@tls_verify_option
@click.argument("registry")
def login(
    registry: str,
    username: str | None,
    password: str | None,
    password_stdin: bool,
    get_login: bool,
    tls_verify: bool | None,
) -> None:
    """Log in to a registry (writes the podman/skopeo auth file)."""
    from portside.config import auth_file_path, lookup_credentials, store_credentials
    from portside.errors import InvalidArgument, NotFound
    from portside.registry.resolver import Resolver

    registry = _registry_host(registry)
    if get_login:
        found = lookup_credentials(registry)
        if found is None:
            raise NotFound(f"not logged into {registry}")
        click.echo(found[0])
        return
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    if username is None:
        username = click.prompt("Username")
    if password is None:
        password = click.prompt("Password", hide_input=True)
    if not username:
        raise InvalidArgument("login: username is empty")
    resolver = Resolver(tls_verify=tls_verify, credentials=(username, password))
    try:
        client = resolver.client(registry)
        client.ping()
        # a registry that lets anyone in without a challenge cannot check the password;
        # that is what docker and podman accept too
    finally:
        resolver.close()
    store_credentials(registry, username, password)
    click.echo(f"Login Succeeded! (credentials in {auth_file_path()})")


def _registry_host(text: str) -> str:
    for scheme in ("https://", "http://", "docker://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    text = text.split("/", 1)[0]
    return "docker.io" if text in ("index.docker.io", "registry-1.docker.io") else text
