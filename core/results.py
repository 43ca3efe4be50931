"""Finished media kept in a job row (bytes plus a JSON description) until it is delivered."""

from __future__ import annotations

import base64
import json

from core.parts import Audio, Image, Media


def stored(media: Media) -> tuple[bytes, str]:
    """``media`` as the ``result`` and ``result_meta`` columns of its job row."""
    meta: dict[str, object] = {"filename": media.filename, "mime_type": media.mime_type, "title": media.title}
    if isinstance(media, Image):
        meta |= {"kind": "image", "prompt": media.prompt}
    else:
        meta |= {
            "kind": "audio",
            "prompt": media.prompt,
            "lyrics": media.lyrics,
            "duration_s": media.duration_s,
        }
        if media.cover is not None:
            cover_data, cover_meta = stored(media.cover)
            meta["cover"] = {"data": base64.b64encode(cover_data).decode(), "meta": json.loads(cover_meta)}
    return media.data, json.dumps(meta, sort_keys=True)


def restored(data: bytes, meta_json: str) -> Media:
    """The media a job row keeps, as the generator first yielded it."""
    meta = json.loads(meta_json)
    if meta["kind"] == "image":
        return Image(
            data=data,
            filename=meta["filename"],
            mime_type=meta["mime_type"],
            prompt=meta["prompt"],
            title=meta["title"],
        )
    cover = meta.get("cover")
    cover_image = restored(base64.b64decode(cover["data"]), json.dumps(cover["meta"])) if cover else None
    return Audio(
        data=data,
        filename=meta["filename"],
        mime_type=meta["mime_type"],
        title=meta["title"],
        prompt=meta["prompt"],
        lyrics=meta["lyrics"],
        duration_s=meta["duration_s"],
        cover=cover_image if isinstance(cover_image, Image) else None,
    )
