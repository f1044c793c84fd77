#!/usr/bin/env python3
"""Copy new photos from a camera card into a dated archive: Photos/YYYY/YYYY-MM-DD/.

The date comes from the file's modification time (cameras set it to the capture time).
Files already in the archive with the same size are skipped, so the script can be re-run.

Usage: backup_photos.py /media/card/DCIM ~/Photos [--dry-run]
"""

import argparse
import shutil
import sys
from datetime import datetime
from pathlib import Path

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".heic", ".png", ".cr2", ".nef", ".arw", ".mp4", ".mov"}


def target_for(photo: Path, archive: Path) -> Path:
    taken = datetime.fromtimestamp(photo.stat().st_mtime)
    return archive / f"{taken:%Y}" / f"{taken:%Y-%m-%d}" / photo.name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("card", type=Path)
    parser.add_argument("archive", type=Path)
    parser.add_argument("--dry-run", action="store_true", help="only print what would be copied")
    args = parser.parse_args()

    if not args.card.is_dir():
        print(f"backup_photos: {args.card} is not a directory (is the card mounted?)", file=sys.stderr)
        return 1

    copied = skipped = 0
    for photo in sorted(args.card.rglob("*")):
        if not photo.is_file() or photo.suffix.lower() not in PHOTO_SUFFIXES:
            continue
        dest = target_for(photo, args.archive)
        if dest.exists() and dest.stat().st_size == photo.stat().st_size:
            skipped += 1
            continue
        print(f"{photo} -> {dest}")
        if not args.dry_run:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(photo, dest)
        copied += 1

    print(f"{copied} copied, {skipped} already in the archive")
    return 0


if __name__ == "__main__":
    sys.exit(main())
