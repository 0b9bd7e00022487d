"""How a network is reached: WS-Discovery, ONVIF, RTSP, HTTP snapshots, and the camera simulator.

Nothing here imports `gateway`: an adapter can run inside the gateway or as its own process.
"""
