"""TensorRT engines on the device: manifests, device facts, self-test references.

Nothing here imports TensorRT or pycuda at module level; the parts that need them do it
inside the function, so that the checks can run (and be tested) on any machine.
"""
