"""Images: the store (store.py), the one copy routine (copy.py) over transports, pull/push.

Entry points for other layers: `ImageStore(root)` (lookup/get, manifest/config/layers,
tag, remove, prune, gc; `register_in_use_check` to veto removals), `pull.pull_image`,
`push.push_image`, `copy.copy` with `transports.local.LocalSource/LocalDestination`.
"""
