"""clicksam as a Label Studio ML backend: keypoints and rectangles in, brush masks out.

Modules: :mod:`.protocol` (request and response shapes, the labelling config), :mod:`.rle`
(Label Studio's brush RLE), :mod:`.images` (where a task's image lives), :mod:`.sessions` (a
session per task and object), :mod:`.backend` (setup / predict / webhook), :mod:`.app` (the
FastAPI app), :mod:`.cli` (``clicksam label-studio``). Nothing heavy is imported here.
"""
