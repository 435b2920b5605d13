"""The Open Inference Protocol's gRPC messages (package ``inference``), generated from
the vendored ``grpc_predict_v2.proto`` (KServe's, unchanged; Apache-2.0).

``grpc_predict_v2_pb2`` (and its ``.pyi``) are generated at dev time and committed:
after changing the proto run ``python -m aiweb.serving.oip_grpc`` (grpcio-tools) and
``ruff format src/aiweb/serving/oip_grpc``. The server is :mod:`aiweb.cli.grpc_server`.
"""

__all__ = ["grpc_predict_v2_pb2"]
