"""Video quality diagnosis: is a camera that answers showing anything useful?

Pure checks over decoded frames (OpenCV, numpy), with no network, clock or store, so that the
gateway and an edge adapter run the same code (`adapters` never imports `gateway`):

- `frame.py`       the downscaled pictures and statistics every check shares (`prepare`)
- `checks.py`      one function per check: signal loss, too dark, too bright, low contrast,
                   colour cast, noise, stripes, blur, frozen, occlusion, displacement
- `thresholds.py`  the limits (suspect, faulty), shipped defaults, day and night sets
- `diagnose.py`    all checks over one frame, which failures mask which, the verdict

docs/quality.md describes every measure and what is not done yet. Nothing is imported here:
`thresholds` (pydantic only) is part of the gateway's settings, which load without OpenCV.
"""
