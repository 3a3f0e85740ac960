#!/usr/bin/env bash
# Regenerates the *_pb2.py modules (and .pyi stubs) from the .proto files here.
# Needs grpcio-tools (in the project's dev extras): scripts/setup dev.
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-../../.venv/bin/python}
"$python" -m grpc_tools.protoc -I. --python_out=. --pyi_out=. types.proto remote.proto fast.proto write_v2.proto fast_v2.proto
# protoc writes absolute imports ("import types_pb2"); make them package-relative.
sed -i -E 's/^import (types|remote)_pb2 as/from remote_write.prompb import \1_pb2 as/' ./*_pb2.py
sed -i -E 's/^import (types|remote)_pb2 as/from remote_write.prompb import \1_pb2 as/' ./*_pb2.pyi
