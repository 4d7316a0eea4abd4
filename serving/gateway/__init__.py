"""The traffic gateway behind `modelrollout gateway`: splits, pins and mirrors requests
between model revisions as the route table says.

split.py decides (pure); the proxy, mirror and watch modules do the I/O.
"""
