"""The engine: containers over images, storage, the runtime and the monitor."""
