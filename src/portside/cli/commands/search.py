"""`portside search --list-tags REPO` and `image tags REPO`: a repository's tags."""

from __future__ import annotations

import json

import click

from portside.cli.commands.image import creds_option, make_resolver, tls_verify_option


def _tags(repo: str, creds: str | None, tls_verify: bool | None) -> tuple[str, list[str]]:
    from portside.oci.reference import parse_reference

    resolver = make_resolver(tls_verify, creds)
    try:
        ref = resolver.candidates(repo)[0]
        ref = parse_reference(ref.name)
        ep = resolver.endpoints(ref)[-1]
        client = resolver.client(ep.domain, ep.insecure)
        return ref.name, client.list_tags(ep.repo)
    finally:
        resolver.close()


@click.command()
@click.option("--list-tags", is_flag=True, help="List the tags of REPO (the only mode supported).")
@click.option("--format", "fmt", default=None, help="'json' for machine-readable output.")
@creds_option
@tls_verify_option
@click.argument("term")
def search(
    term: str, list_tags: bool, fmt: str | None, creds: str | None, tls_verify: bool | None
) -> None:
    """List a repository's tags (registry search is not offered by the distribution API)."""
    if not list_tags:
        raise click.UsageError("only `search --list-tags REPOSITORY` is supported")
    name, tags = _tags(term, creds, tls_verify)
    if fmt == "json":
        click.echo(json.dumps([{"Name": name, "Tags": tags}], indent=4))
        return
    click.echo(f"{'NAME':<40} TAG")
    for t in tags:
        click.echo(f"{name:<40} {t}")


@click.command("tags")
@creds_option
@tls_verify_option
@click.argument("repository")
def image_tags(repository: str, creds: str | None, tls_verify: bool | None) -> None:
    """List the tags of a registry repository, one per line."""
    _, tags = _tags(repository, creds, tls_verify)
    for t in tags:
        click.echo(t)
