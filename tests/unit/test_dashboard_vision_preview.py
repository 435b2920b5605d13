"""The vision playground embeds a large overlay scaled down (a page stays small)."""

from __future__ import annotations

import io

from PIL import Image

from aiweb.dashboard.views import PREVIEW_SIDE, _preview


def test_a_large_overlay_is_scaled_to_the_preview_side() -> None:
    out = io.BytesIO()
    Image.new("RGB", (4000, 3000), "white").save(out, "PNG")
    with Image.open(io.BytesIO(_preview(out.getvalue()))) as small:
        assert small.format == "PNG"
        assert small.size == (PREVIEW_SIDE, PREVIEW_SIDE * 3 // 4)
