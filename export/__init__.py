"""edgeecg.export: fold checkpoints → ONNX, fused ensemble, mixed FP16 ONNX, TensorRT plans, a verified bundle.

Modules: checkpoints (read fold checkpoints), onnx_export (member export + check against torch), fused
(one-graph ensemble), fp16 (mixed-precision pass), detector, sam, tensorrt_build (strongly typed plans),
parity (figures), bundle_writer (the whole export, atomic), cli (`edgeecg-export`). Train extra only.
"""
