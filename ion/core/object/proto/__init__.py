"""ion's object schemas (.proto) and the modules protoc generates from them.

The *_pb2.py/.pyi files here are written by scripts/gen_objects.py; never edit them.
"""
