#!/usr/bin/env bash
# The Python packages bench/gpu_check.py needs on the device machine that its image lacks (trl,
# datasets, pydantic, trackio, ...) or holds in an older version (transformers, huggingface_hub,
# tokenizers, peft): nothing can be fetched there, so they travel as wheels.  Run this where PyPI
# is reachable; it downloads them, pinned as in requirements.lock, built for CPython 3.12 on
# x86-64 Linux, into .whl/ (git-ignored), plus the optional liger-kernel.  Then, on the device,
# with .whl carried:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl &&
#   PYTHONPATH=/tmp/site:$PWD python3 bench/gpu_check.py
set -euo pipefail
cd "$(dirname "$0")/.."
LIGER_VERSION=${LIGER_VERSION:-0.8.5}  # optional fused kernels; not in requirements.lock (CPU has no use for them)
names=(transformers trl datasets dill multiprocess pydantic pydantic_core annotated-types typing-inspection
       typing_extensions trackio gradio_client orjson python-multipart starlette uvicorn brotli huggingface_hub
       hf-xet httpx2 httpcore2 truststore h2 hpack hyperframe tokenizers safetensors peft)
pins=()
for name in "${names[@]}"; do
    pattern=$(echo "$name" | sed 's/[-_]/[-_]/g')
    pin=$(grep -i -E "^${pattern}==" requirements.lock | head -1)
    [ -n "$pin" ] || { echo "gpu_wheels: $name is not pinned in requirements.lock" >&2; exit 1; }
    pins+=("$pin")
done
pins+=("liger-kernel==${LIGER_VERSION}")
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_39_x86_64 --platform manylinux_2_35_x86_64 --platform manylinux_2_34_x86_64 \
    --platform manylinux_2_31_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whl "${pins[@]}"
echo "gpu_wheels: $(ls .whl | wc -l) wheels, $(du -sh .whl | cut -f1) in .whl/"
