"""The registry transport: HTTP client, auth, resolver (registries.conf).

httpx's optional command-line module imports rich, click and pygments (about
0.2 s, the largest part of a pull of a cached image); portside never uses it,
so it is marked absent before httpx is first imported.
"""

import sys

if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
