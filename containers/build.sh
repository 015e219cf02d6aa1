#!/usr/bin/env bash
# Build ctrbench's Apptainer images (Apptainer >= 1.2, x86_64; no GPU needed, also for the GPU image).
#
#   containers/build.sh [cpu|gpu|all] [-o DIR] [-j MAX_JOBS] [--force] [--print-name] [-- APPTAINER_BUILD_ARGS...]
#
# Each image is written as DIR/ctrbench-<kind>-py<X.Y>-torch<version>-<hash>.sif (DIR: containers/images, the
# default of the workflow's `containers.prefix`), the name that the workflow's rules ask for: the hash covers the
# definition file and what envs/ctrbench.lock says for that kind, so an edited definition or lock gives a new name,
# and an image of that name that already exists is the same recipe and is kept (--force rebuilds it).
#   --print-name   print the image paths and build nothing
#   -j MAX_JOBS    parallel compile jobs of the GPU image's CUDA extensions (default 4; about 8 GB of memory each)
#   -- ARGS        passed on to `apptainer build`, e.g. -- --fakeroot
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kinds=()
out="containers/images"
max_jobs=4
force=0
print_only=0
build_args=()
while (($#)); do
    case "$1" in
        cpu | gpu) kinds+=("$1") ;;
        all) kinds+=(cpu gpu) ;;
        -o | --out) out="$2"; shift ;;
        -j | --jobs) max_jobs="$2"; shift ;;
        --force) force=1 ;;
        --print-name) print_only=1 ;;
        -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        --) shift; build_args=("$@"); break ;;
        *) echo "build.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
((${#kinds[@]})) || kinds=(cpu gpu)

cd "$root"  # %files in the definitions name paths relative to the checkout
case "$out" in /*) ;; *) out="$root/$out" ;; esac

for kind in "${kinds[@]}"; do
    image="$out/$(python3 envs/lock.py image-name "$kind")"
    if ((print_only)); then
        echo "$image"
        continue
    fi
    if [[ -e "$image" && $force -eq 0 ]]; then
        echo "build.sh: $image exists (same definition and lock): kept" >&2
        continue
    fi
    command -v apptainer >/dev/null || { echo "build.sh: apptainer is not installed (https://apptainer.org)" >&2; exit 1; }
    mkdir -p "$out"
    partial="$image.partial"
    rm -f "$partial"
    extra=()
    [[ "$kind" == gpu ]] && extra=(--build-arg "MAX_JOBS=$max_jobs")
    echo "build.sh: building $image" >&2
    apptainer build --force ${extra[@]+"${extra[@]}"} ${build_args[@]+"${build_args[@]}"} "$partial" "containers/ctrbench-$kind.def"
    mv -f "$partial" "$image"  # only a finished build gets the name the workflow looks for
    echo "$image"
done
