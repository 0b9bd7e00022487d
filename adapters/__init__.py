"""How a network is reached: WS-Discovery, ONVIF, RTSP, HTTP snapshots, and the camera simulator.

Nothing here imports `gateway`: an adapter can run inside the gateway or as its own process.
"""

import os

# OpenCV's own fence against decompression bombs, a second line behind camgw's header checks
# (`max_pixels`): imread/imdecode refuse an image of more pixels than this. OpenCV reads it once,
# when cv2 loads, and has no API to change it, so it is set here, before any adapters module (the
# simulator, RTSP grabs) or adapters.imaging can import cv2. At the highest `max_pixels` a config
# may set, so it never refuses what a configuration allows; an operator's own value wins.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 27))  # config.MAX_PIXELS_BOUND
