"""A protoc plugin that emits the Python messages, stubs and gRPC code for memos.v1.

buf runs it as a local plugin (see buf.gen.yaml). It hands the request to the
protoc bundled in grpcio-tools, which knows the python, pyi and grpc_python
generators, then rewrites the generated imports so that the code lives under
``memos_grpc._proto`` instead of claiming the top-level package ``memos``.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

_PACKAGE_PREFIX = "memos_grpc._proto."
_IMPORT = re.compile(r"^from memos(\.v\d+) import ", re.MULTILINE)


def _rewrite(text: str) -> str:
    return _IMPORT.sub(lambda m: f"from {_PACKAGE_PREFIX}memos{m.group(1)} import ", text)


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        descriptors = root / "descriptors.pb"
        descriptors.write_bytes(descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString())
        out = root / "out"
        out.mkdir()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"--descriptor_set_in={descriptors}",
                f"--python_out={out}",
                f"--pyi_out={out}",
                f"--grpc_python_out={out}",
                *request.file_to_generate,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            response.error = result.stderr or "grpc_tools.protoc failed"
            return response
        packages = {"__init__.py"}
        for path in sorted(out.rglob("*.py*")):
            relative = path.relative_to(out)
            parts = relative.parts[:-1]
            for depth in range(1, len(parts) + 1):
                packages.add("/".join(parts[:depth]) + "/__init__.py")
            response.file.add(name=relative.as_posix(), content=_rewrite(path.read_text()))
        for init in sorted(packages):
            response.file.add(name=init, content='"""Generated from proto/ by tools.gen_proto; do not edit."""\n')
    return response


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request).SerializeToString())


if __name__ == "__main__":
    main()
