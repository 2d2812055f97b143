"""Starting a container's processes: the launcher (parent side) and the init steps (child side)."""
