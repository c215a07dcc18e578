"""Is there a screen? ``cv2.imshow`` without one aborts the whole process (Qt), so check first."""
from __future__ import annotations

import os
import sys

import cv2

WINDOW = "novum"


def display_available() -> bool:
    """True when a display server is reachable and this OpenCV build has a GUI backend."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    info = cv2.getBuildInformation()
    gui = [ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.strip().startswith("GUI:")]
    if gui and gui[0].upper() == "NONE":
        return False
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error:
        return False
    return True
