"""`portside images`: list stored images."""

from __future__ import annotations

import json

import click

from portside.cli.commands.image import human_ago, human_size, open_store, parse_time, repo_tag


@click.command()
@click.option(
    "--all", "-a", "all_images", is_flag=True, help="Also other platforms of multi-platform pulls."
)
@click.option("--quiet", "-q", is_flag=True, help="Only image IDs.")
@click.option("--digests", is_flag=True, help="Show the manifest digests.")
@click.option("--no-trunc", is_flag=True, help="Full image IDs.")
@click.option("--format", "fmt", default=None, help="'json', 'table' or a template like '{{.ID}}'.")
@click.argument("reference", required=False)
def images(
    all_images: bool,
    quiet: bool,
    digests: bool,
    no_trunc: bool,
    fmt: str | None,
    reference: str | None,
) -> None:
    """List images in local storage."""
    store = open_store()
    records = store.images()
    if not all_images:
        # other platforms of a multi-platform pull: no name of their own, shown with -a
        siblings = store.index_children()
        records = [r for r in records if r.names or str(r.manifest_digest) not in siblings]
    if reference:
        from portside.images.store import normalize_name_safe

        want = normalize_name_safe(reference)
        records = [
            r
            for r in records
            if any(
                n == want
                or (
                    n.rsplit(":", 1)[0] == want.rsplit(":", 1)[0]
                    and ":" not in reference.rsplit("/", 1)[-1]
                )
                for n in r.names
            )
        ]
    if fmt == "json":
        out = []
        for r in records:
            out.append(
                {
                    "Id": r.id,
                    "Digest": str(r.manifest_digest),
                    "RepoTags": r.names,
                    "RepoDigests": r.digests,
                    "Names": r.names,
                    "Created": parse_time(r.created) or 0,
                    "CreatedAt": r.created,
                    "Size": r.size,
                    "Dangling": not r.names,
                    "Architecture": r.architecture,
                    "Os": r.os,
                }
            )
        click.echo(json.dumps(out, indent=4))
        return
    if fmt is not None and "{{" in fmt:
        from portside.cli.commands.inspect import _render

        template = fmt.removeprefix("table ").replace("\\t", "\t")
        for r in records:
            for name in r.names or ["<none>:<none>"]:
                repo, tag = repo_tag(name) if name != "<none>:<none>" else ("<none>", "<none>")
                fields: dict[str, object] = {
                    "ID": r.id if no_trunc else r.short_id,
                    "Id": r.id,
                    "Repository": repo,
                    "Tag": tag,
                    "Digest": str(r.manifest_digest),
                    "CreatedAt": r.created or "",
                    "CreatedSince": human_ago(parse_time(r.created)),
                    "Size": human_size(r.size),
                }
                click.echo(_render(template, fields))
        return
    if fmt not in (None, "table"):
        raise click.BadParameter(
            f"unsupported format {fmt!r} (json, table or a {{{{.Field}}}} template)",
            param_hint="--format",
        )
    if quiet:
        seen = []
        for r in records:
            ident = r.id if no_trunc else r.short_id
            if ident not in seen:
                seen.append(ident)
                click.echo(ident)
        return
    rows = []
    for r in records:
        # an image pulled by digest has no tag but a repository: show it as podman does
        untagged = [f"{d.split('@', 1)[0]}:<none>" for d in r.digests[:1]] or ["<none>:<none>"]
        for name in r.names or untagged:
            repo, tag = repo_tag(name) if name != "<none>:<none>" else ("<none>", "<none>")
            row = [repo, tag]
            if digests:
                row.append(str(r.manifest_digest))
            row += [
                r.id if no_trunc else r.short_id,
                human_ago(parse_time(r.created)),
                human_size(r.size),
            ]
            rows.append(row)
    header = (
        ["REPOSITORY", "TAG"]
        + (["DIGEST"] if digests else [])
        + [
            "IMAGE ID",
            "CREATED",
            "SIZE",
        ]
    )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    for line in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=False)).rstrip())
