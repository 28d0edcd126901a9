"""Camera messages <-> frames: ``sensor_msgs/Image`` and ``CompressedImage`` decoded with OpenCV.

A frame is a ``uint8 [H, W, 3]`` RGB array, what the VLM rewards take (``vlm_reward`` scores
rendered frames in the same format). The functions read message fields by name, so they take
messages of the DDS transport (``transport_dds.msg_class``), rclpy messages and rosbags'
deserialized messages alike.

Supported ``Image.encoding``: ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8``, ``mono16``
(scaled to 8 bits by its maximum, 65535), ``16UC1`` (as mono16); ``8UC3`` is taken as bgr8 (the
OpenCV convention). Rows may be padded (``step`` > width * channels). Bayer patterns, YUV and
float depth images are not supported (``ValueError`` names the encoding).
``CompressedImage.format`` is whatever ``cv2.imdecode`` reads (jpeg, png, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "16UC1", "8UC3")
_CHANNELS = {
    "rgb8": 3,
    "bgr8": 3,
    "8UC3": 3,
    "rgba8": 4,
    "bgra8": 4,
    "mono8": 1,
    "mono16": 1,
    "16UC1": 1,
}


def _cv2() -> Any:
    try:
        import cv2
    except ImportError:  # pragma: no cover - cv2 is in the dds extra
        raise ImportError("camera frames need OpenCV: pip install opencv-python-headless") from None
    return cv2


def _data_bytes(data: Any) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    return np.asarray(data, dtype=np.uint8).tobytes()


def image_to_frame(msg: Any) -> np.ndarray:
    """``sensor_msgs/Image`` -> RGB ``uint8 [H, W, 3]``.

    Raises:
        ValueError: unsupported encoding, or ``data`` shorter than ``height * step``.
    """
    cv2 = _cv2()
    enc = str(msg.encoding)
    if enc not in _CHANNELS:
        raise ValueError(f"Image.encoding: got {enc!r}, expected one of {', '.join(ENCODINGS)}")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    wide = enc in ("mono16", "16UC1")
    raw = np.frombuffer(_data_bytes(msg.data), dtype=np.uint8)
    if raw.size < h * step:
        raise ValueError(f"Image: {raw.size} data bytes, expected height * step = {h * step}")
    ch = _CHANNELS[enc]
    rows = raw[: h * step].reshape(h, step)[:, : w * ch * (2 if wide else 1)]
    if wide:
        big = bool(getattr(msg, "is_bigendian", 0))
        img16 = rows.copy().view(">u2" if big else "<u2").reshape(h, w)
        gray = (img16.astype(np.float32) / 65535.0 * 255.0 + 0.5).astype(np.uint8)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    img = np.ascontiguousarray(rows.reshape(h, w, ch))
    if enc == "rgb8":
        return img
    if enc in ("bgr8", "8UC3"):
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if enc == "rgba8":
        return cv2.cvtColor(img, cv2.COLOR_RGBA2RGB)
    if enc == "bgra8":
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2RGB)  # mono8


def compressed_to_frame(msg: Any) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (jpeg, png, ...) -> RGB ``uint8 [H, W, 3]``.

    Raises:
        ValueError: OpenCV cannot decode the bytes (names the message's ``format``).
    """
    cv2 = _cv2()
    buf = np.frombuffer(_data_bytes(msg.data), dtype=np.uint8)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if bgr is None:
        raise ValueError(
            f"CompressedImage: cannot decode {buf.size} bytes of format {getattr(msg, 'format', '?')!r}"
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def to_frame(msg: Any) -> np.ndarray:
    """Either message type -> RGB frame (a ``format`` field means CompressedImage)."""
    return (
        compressed_to_frame(msg)
        if hasattr(msg, "format") and not hasattr(msg, "encoding")
        else image_to_frame(msg)
    )


def encode_image_fields(frame: np.ndarray, encoding: str = "rgb8") -> dict[str, Any]:
    """Fields of a ``sensor_msgs/Image`` carrying an RGB frame (``rgb8`` or ``bgr8``)."""
    frame = np.ascontiguousarray(frame, dtype=np.uint8)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame: got shape {frame.shape}, expected [H, W, 3]")
    if encoding == "bgr8":
        frame = np.ascontiguousarray(frame[:, :, ::-1])
    elif encoding != "rgb8":
        raise ValueError(f"encoding: got {encoding!r}, expected rgb8 or bgr8")
    h, w = frame.shape[:2]
    return {
        "height": h,
        "width": w,
        "encoding": encoding,
        "is_bigendian": 0,
        "step": 3 * w,
        "data": frame.tobytes(),
    }


def encode_compressed_fields(
    frame: np.ndarray, fmt: str = "jpeg", quality: int = 90
) -> dict[str, Any]:
    """Fields of a ``sensor_msgs/CompressedImage`` (``jpeg`` or ``png``) of an RGB frame."""
    cv2 = _cv2()
    ext = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}.get(fmt)
    if ext is None:
        raise ValueError(f"format: got {fmt!r}, expected jpeg or png")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext == ".jpg" else []
    ok, buf = cv2.imencode(
        ext, cv2.cvtColor(np.asarray(frame, dtype=np.uint8), cv2.COLOR_RGB2BGR), params
    )
    if not ok:
        raise ValueError("OpenCV could not encode the frame")
    return {"format": "jpeg" if ext == ".jpg" else "png", "data": buf.tobytes()}


@dataclass
class LatestFrame:
    """The newest decoded frame of a camera topic, with its receive time (thread-safe enough:
    one writer replaces the tuple atomically)."""

    frame: np.ndarray | None = None
    recv_time: float = float("-inf")
    count: int = 0

    def update(self, msg: Any, recv_time: float) -> np.ndarray:
        frame = to_frame(msg)
        self.frame, self.recv_time, self.count = frame, recv_time, self.count + 1
        return frame
