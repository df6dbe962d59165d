# Sourced by bootstrap.sh and sanitize.sh: OpenBLAS 0.3.21 does not recognise some newer Xeons (Sapphire
# Rapids) and falls back to its generic Prescott kernels, which skip AVX2/AVX-512 and round differently;
# then OPENBLAS_CORETYPE names the kernel family the CPU can run.
#   select_openblas_core PROGRAM   (any program linked with OpenBLAS; run once with --help)
select_openblas_core() {
  [ -z "${OPENBLAS_CORETYPE:-}" ] && [ -x "$1" ] || return 0
  local core
  core="$(OPENBLAS_VERBOSE=2 "$1" --help 2>&1 >/dev/null | sed -n 's/^Core: //p' | head -1)"
  case "$core" in
    Prescott|Core2|Penryn|Nehalem|Dunnington|Atom)
      if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
      elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
      if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
        echo "adx: OpenBLAS chose its $core kernels on this CPU; using OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE"
      fi
      ;;
  esac
  return 0
}
