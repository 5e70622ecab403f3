#!/usr/bin/env bash
# Prove the aarch64 path on an x86_64 machine: a real arm64 Debian userland under qemu-user emulation.
#
# Builds (once, cached) an arm64 Debian bookworm root with debootstrap, installs edgecrop there from this
# checkout with aarch64 wheels from PyPI, and inside it runs `edgecrop info`, the CLI on the sample images,
# the tests that need no TensorFlow, and the benchmark's on-device mode. Then it compares the crops and the
# raw int8 maps with the same run on the host and prints a verdict. Needs root (debootstrap, chroot).
#
#   sudo scripts/arm64_emulation.sh [OUT_DIR]        # default OUT_DIR: .cache/arm64-run
#   EDGECROP_ARM64_CACHE=/path  where the root and wheels are kept (default .cache/)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${EDGECROP_ARM64_CACHE:-$repo/.cache}"
root="$cache/arm64-root"
wheels="$cache/arm64-wheels"
mkdir -p "$cache"
out="$(mkdir -p "${1:-$cache/arm64-run}" && cd "${1:-$cache/arm64-run}" && pwd)"
host_python="${EDGECROP_HOST_PYTHON:-python3}"
say() { printf '[arm64] %s\n' "$*" >&2; }
cannot() { say "CANNOT: $*"; echo "verdict: NOT RUN ($*)" > "$out/verdict.txt"; exit 3; }

[ "$(id -u)" -eq 0 ] || cannot "needs root for debootstrap and chroot"
[ "$(uname -m)" = x86_64 ] || say "host is $(uname -m), not x86_64: the comparison is then between two $(uname -m) runs"

# 1. Tools, from Debian's packages.
if ! command -v debootstrap >/dev/null || [ ! -e /usr/lib/binfmt.d/qemu-aarch64.conf ]; then
  say "installing qemu-user-static and debootstrap"
  apt-get install -y -q qemu-user-static debootstrap >/dev/null || cannot "apt-get install qemu-user-static debootstrap failed"
fi

# 2. Let the kernel run aarch64 binaries through qemu (there is no update-binfmts on these machines).
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || cannot "cannot mount binfmt_misc"
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register || cannot "cannot register qemu-aarch64"
fi

# 3. The arm64 root (about 5 minutes the first time, then cached).
if [ ! -x "$root/usr/bin/python3" ]; then
  mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  say "debootstrap arm64 bookworm from $mirror into $root"
  rm -rf "$root"
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,python3-pip \
    bookworm "$root" "$mirror" > "$cache/arm64-debootstrap.log" 2>&1 \
    || cannot "debootstrap failed (log: $cache/arm64-debootstrap.log)"
fi
say "root: $(chroot "$root" uname -m), $(chroot "$root" python3 --version), emulating ${EDGECROP_ARM64_CPU:-cortex-a72}"

# 4. Wheels: fetched on the host (pip inside the root cannot verify this network's TLS), at the host's
#    versions of the runtime dependencies, so both sides run the same LiteRT, NumPy, Pillow and Numba.
mkdir -p "$wheels"
pins="$("$host_python" - <<'PY'
from importlib.metadata import version
print(" ".join(f"{d}=={version(d)}" for d in ("numpy", "pillow", "numba", "ai-edge-litert")))
PY
)" || cannot "the host has no edgecrop runtime installed"
say "aarch64 wheels: $pins"
"$host_python" -m pip download -q --only-binary=:all: --python-version 3.11 \
  --platform manylinux_2_28_aarch64 --platform manylinux_2_27_aarch64 --platform manylinux2014_aarch64 \
  --platform manylinux_2_17_aarch64 \
  -d "$wheels" $pins pytest pytest-timeout hypothesis || cannot "pip download of aarch64 wheels ($pins) failed"
rm -f "$wheels"/edgecrop-*.whl
"$host_python" -m pip wheel -q --no-deps -w "$wheels" "$repo" || cannot "cannot build the edgecrop wheel"

# 5. Install inside, and copy the checkout's tests and what they read (examples, models, golden vectors).
mounted=()
cleanup() { for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null || true; done; }
trap cleanup EXIT
# /proc, and a minimal /sys of the root's own: the x86 host's /sys (its CPU topology and caches) crashes
# LiteRT 2.3.0's aarch64 cpuinfo in allocate_tensors (SIGSEGV), and with no /sys at all cpuinfo prints
# "Error in cpuinfo: failed to parse ..." on every run; a board has its own /sys, with these two lists
mountpoint -q "$root/proc" || { mount --bind /proc "$root/proc"; mounted+=("$root/proc"); }
mountpoint -q "$root/sys" && umount -l "$root/sys"
mkdir -p "$root/sys/devices/system/cpu"
echo "0-$(($(nproc) - 1))" > "$root/sys/devices/system/cpu/possible"
echo "0-$(($(nproc) - 1))" > "$root/sys/devices/system/cpu/present"
rm -rf "$root/opt/wheels" "$root/opt/src" && mkdir -p "$root/opt/src"
cp -r "$wheels" "$root/opt/wheels"
(cd "$repo" && git ls-files -z tests examples benchmarks models android_demo pyproject.toml \
  | xargs -0 cp --parents -t "$root/opt/src")  # pyproject.toml: the same pytest settings and markers
# a clean environment inside: the host's PIP_* and paths mean nothing there. QEMU_CPU: emulate a Raspberry
# Pi 4's Cortex-A72 (EDGECROP_ARM64_CPU=cortex-a76 for a Pi 5), not qemu's default "max" CPU, whose newer
# extensions lead LiteRT 2.3.0 to kernels that compute wrong maps under this qemu (seen: an audit test's
# salient photos kept 44% of the time instead of > 90%; right with cortex-a72)
cpu="${EDGECROP_ARM64_CPU:-cortex-a72}"
inside() {
  chroot "$root" env -i PATH=/usr/bin:/bin HOME=/root QEMU_CPU="$cpu" NUMBA_CACHE_DIR=/opt/numba-cache \
    PYTHONDONTWRITEBYTECODE=1 "$@"
}
[ -x "$root/opt/venv/bin/python" ] || inside python3 -m venv /opt/venv
whl="$(cd "$wheels" && ls edgecrop-*.whl | head -n1)"
inside /opt/venv/bin/pip install -q --no-index --find-links /opt/wheels --force-reinstall --no-deps "/opt/wheels/$whl"
inside /opt/venv/bin/pip install -q --no-index --find-links /opt/wheels edgecrop pytest pytest-timeout hypothesis \
  || cannot "pip install inside the arm64 root failed"
status=0
# 6. Runs inside the root (cwd /opt/src so the tests find examples/ and models/).
say "edgecrop info"
inside /opt/venv/bin/edgecrop info > "$out/info.txt" 2>&1 || status=1
say "edgecrop crop --json on the sample images"
inside sh -c 'cd /opt/src && /opt/venv/bin/python -m benchmarks.arm64_compare dump /opt/arm64.json' \
  > "$out/dump.log" 2>&1 || status=1
cp "$root/opt/arm64.json" "$out/arm64.json" 2>/dev/null || true
inside sh -c 'cd /tmp && /opt/venv/bin/edgecrop crop --json /opt/src/examples/grace_hopper.jpg' \
  > "$out/cli.jsonl" 2>>"$out/dump.log" || status=1
say "tests that need no TensorFlow"
# the root has no JDK and no browser: the Java core and the demo's browser test run on the host; the
# fuzzers, signal tests, the newcomer's and the limits' CLI runs and the demo server's (pure Python, the same
# on every machine) would take most of an hour emulated, and qemu catches every signal itself (the limits'
# signal tests read that from /proc)
inside sh -c 'cd /opt/src && /opt/venv/bin/python -m pytest -q -p no:cacheprovider tests \
  -k "not java_cropcore and not real_browser and not mutated and not fuzz and not interrupted and not any_options \
  and not test_newcomer and not test_limits and not test_demo_server"' \
  > "$out/pytest.txt" 2>&1 || status=1
tail -n 3 "$out/pytest.txt" >&2
say "benchmark, on-device mode (emulated: not a timing)"
inside sh -c 'cd /opt/src && /opt/venv/bin/edgecrop bench --repeats 2 --threads 1' > "$out/bench.txt" 2>&1 || status=1

# 7. The same on the host, and the comparison.
(cd "$repo" && "$host_python" -m benchmarks.arm64_compare dump "$out/host.json") > "$out/host.log" 2>&1 || status=1
(cd "$repo" && "$host_python" -m benchmarks.arm64_compare compare "$out/host.json" "$out/arm64.json") \
  | tee "$out/verdict.txt" || status=1
[ "$status" -eq 0 ] && say "all steps ran (outputs in $out)" || say "some step failed: see $out"
exit "$status"
