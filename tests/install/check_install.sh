#!/usr/bin/env bash
# Install the build into a scratch prefix, then build a consumer twice: through the CMake package
# (find_package(RotateK)) and through pkg-config. Usage: check_install.sh BUILD_DIR WORK_DIR
set -euo pipefail
build="$1"; work="$2"; here="$(cd "$(dirname "$0")" && pwd)"
rm -rf "$work"; mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$here/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
LD_LIBRARY_PATH="$work/prefix/lib:$work/prefix/lib64:${LD_LIBRARY_PATH:-}" "$work/consumer/consumer"
libdir=$(ls -d "$work"/prefix/lib*/pkgconfig | head -1)
export PKG_CONFIG_PATH="$libdir"
sed -i "s|^prefix=.*|prefix=$work/prefix|" "$libdir/rotatek.pc"
cc "$here/consumer/main.c" -o "$work/consumer_pc" $(pkg-config --cflags --libs rotatek)
LD_LIBRARY_PATH="$(dirname "$libdir")" "$work/consumer_pc"
echo "install check: CMake package and pkg-config consumers OK"
# Static: the archive plus what `pkg-config --static` says it needs (backends' archives included).
cc "$here/consumer/main.c" -o "$work/consumer_static" -I"$work/prefix/include" \
   "$(dirname "$libdir")/librotatek.a" $(pkg-config --static --libs rotatek | sed 's/-lrotatek / /')
"$work/consumer_static"
echo "install check: static consumer OK"
