"""The REST control API (aiohttp), mounted by the lead at `/v1`.

`build_api` and `ApiContext` are exported lazily: `control.flowconfig` imports
`control.api.errors`, and importing the whole web app from here would make that a cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from control.api.app import build_api
    from control.api.context import ApiContext

__all__ = ["ApiContext", "build_api"]


def __getattr__(name: str) -> Any:
    if name == "build_api":
        from control.api.app import build_api

        return build_api
    if name == "ApiContext":
        from control.api.context import ApiContext

        return ApiContext
    raise AttributeError(f"module 'control.api' has no attribute {name!r}")
