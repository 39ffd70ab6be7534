"""Render the app icon PNGs and the Windows ``.ico`` from ``resources/llamadash.svg``.

Run it after changing the SVG, and commit what it writes::

    .venv/bin/python packaging/render_icons.py

It writes ``resources/icons/llamadash-<N>.png`` for every size in :data:`PNG_SIZES` (the hicolor
theme sizes the Linux package installs) and ``resources/llamadash.ico`` (sizes :data:`ICO_SIZES`,
each entry a PNG, which Windows Vista and later read). The instance-state icons (tray, table) are
drawn in code by :mod:`llamadash.ui.icons` and need no files.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SVG = ROOT / "resources" / "llamadash.svg"
ICON_DIR = ROOT / "resources" / "icons"
ICO = ROOT / "resources" / "llamadash.ico"
PNG_SIZES: tuple[int, ...] = (16, 22, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES: tuple[int, ...] = (16, 24, 32, 48, 64, 128, 256)


def render_png(svg: Path, size: int) -> bytes:
    """The SVG rendered at ``size``×``size`` pixels (transparent background), as PNG bytes."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise ValueError(f"{svg} is not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, b"PNG"):
        raise OSError(f"cannot encode the {size}px icon as PNG")
    buffer.close()
    return bytes(data.data())


def ico_bytes(pngs: dict[int, bytes]) -> bytes:
    """A Windows ``.ico`` holding each PNG (ICONDIR, ICONDIRENTRY per image, then the images)."""
    sizes = sorted(pngs)
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = len(header) + 16 * len(sizes)
    entries, images = b"", b""
    for size in sizes:
        data = pngs[size]
        side = 0 if size >= 256 else size  # 0 means 256 in an ICONDIRENTRY
        entries += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(data), offset)
        images += data
        offset += len(data)
    return header + entries + images


def main() -> int:
    """Write the PNGs and the ``.ico``; returns the exit status."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    ICON_DIR.mkdir(parents=True, exist_ok=True)
    pngs = {size: render_png(SVG, size) for size in sorted(set(PNG_SIZES) | set(ICO_SIZES))}
    for size in PNG_SIZES:
        path = ICON_DIR / f"llamadash-{size}.png"
        path.write_bytes(pngs[size])
        print(f"wrote {path.relative_to(ROOT)} ({len(pngs[size])} bytes)")
    ICO.write_bytes(ico_bytes({size: pngs[size] for size in ICO_SIZES}))
    print(f"wrote {ICO.relative_to(ROOT)} ({ICO.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
