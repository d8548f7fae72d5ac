#!/usr/bin/env bash
# mk.sh BUILD_DIR SRC_DIR SUFFIX TOOLS... : link bench/gpu tools against a build, strip, xz into the stage
set -euo pipefail
build=$1 src=$2 suf=$3; shift 3
stage=/work/main/.gpu-dec
mkdir -p $stage/xz $stage/lib /tmp/mk
libs="$build/bench/librk_bench_util.a $build/librotatek.a $build/backends/cuda/librotatek_cuda.a"
link="-L/usr/local/cuda/lib -L/usr/local/cuda/lib64 -lcudart -llapacke -fopenmp -lm"
for tool in "$@"; do
    case $tool in
    rk-bench) cp $build/bench/rk-bench /tmp/mk/$tool$suf ;;
    rk-conformance) cp $build/tests/conformance/rk-conformance /tmp/mk/$tool$suf ;;
    *) cc -std=c11 -O2 "$src/bench/gpu/$tool.c" -I$src/include -I$src/core -I$src/bench -o /tmp/mk/$tool$suf $libs $link ;;
    esac
    strip /tmp/mk/$tool$suf
    for l in $(ldd /tmp/mk/$tool$suf | awk '/=> \// {print $3}' | grep -E 'lapack|blas|tmglib|gfortran|quadmath|gomp|cudart|cjson'); do cp -L $l $stage/lib/; done
    xz -T2 -6 -c /tmp/mk/$tool$suf > $stage/xz/$tool$suf.xz
done
du -sh $stage
