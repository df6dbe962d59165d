# Sourced by bootstrap.sh, sanitize.sh and numerics.sh: which of OpenBLAS's kernel families run on this CPU.
# OpenBLAS 0.3.21 does not recognise some newer Xeons (Sapphire Rapids) and falls back to its generic Prescott
# kernels, which skip AVX2/AVX-512; there OPENBLAS_CORETYPE names a family the CPU can run. A family is chosen
# only when the CPU has the instructions it needs and the probe (tests/blas_probe.cpp: products checked
# exactly) survives it, so an override can never end a test with SIGILL.
#   openblas_core_runs PROBE CORE   whether CORE's kernels run here
#   select_openblas_core PROBE      exports OPENBLAS_CORETYPE where OpenBLAS would fall back to Prescott
#   runnable_openblas_cores PROBE   the families the numerics tests run under: the environment's, Haswell
#                                   (what AMD machines get), SkylakeX (what Intel AVX-512 machines get)

# The CPU flags each family's kernels use.
openblas_core_flags() {
  case "$1" in
    SkylakeX) echo "avx512f avx512bw avx512dq avx512vl avx2 fma" ;;
    Cooperlake) echo "avx512f avx512bw avx512dq avx512vl avx512_bf16 avx2 fma" ;;
    Haswell|Zen) echo "avx2 fma" ;;
    *) echo "" ;;
  esac
}

openblas_core_runs() {
  local probe="$1" core="$2" flag reported
  [ -x "$probe" ] || return 1
  for flag in $(openblas_core_flags "$core"); do
    grep -qw "$flag" /proc/cpuinfo || return 1
  done
  reported="$(OPENBLAS_CORETYPE="$core" "$probe" 2>/dev/null)" || return 1
  [ "${reported,,}" = "${core,,}" ]
}

select_openblas_core() {
  local probe="$1" core candidate
  [ -z "${OPENBLAS_CORETYPE:-}" ] && [ -x "$probe" ] || return 0
  core="$("$probe" 2>/dev/null || true)"
  case "$core" in
    Prescott|Core2|Penryn|Nehalem|Dunnington|Atom)
      for candidate in SkylakeX Haswell; do
        if openblas_core_runs "$probe" "$candidate"; then
          export OPENBLAS_CORETYPE="$candidate"
          echo "adx: OpenBLAS chose its $core kernels on this CPU; using OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE"
          break
        fi
      done
      ;;
  esac
  return 0
}

runnable_openblas_cores() {
  local probe="$1" core seen="" here
  here="$("$probe" 2>/dev/null || true)"
  for core in "$here" Haswell SkylakeX; do
    [ -n "$core" ] || continue
    case " $seen " in *" ${core,,} "*) continue ;; esac
    if openblas_core_runs "$probe" "$core"; then
      seen="$seen ${core,,}"
      echo "$core"
    fi
  done
}
