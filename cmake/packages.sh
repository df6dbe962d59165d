# Sourced by bootstrap.sh and sanitize.sh: installs the Debian packages that are missing, and picks the
# build generator.
# Sets sudo_cmd (sudo when not root) for the caller's other system changes.
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

install_missing_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "adx: installing ${missing[*]}"
    "${sudo_cmd[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q "${missing[@]}"
  fi
}

# The generator argument for a build folder: Ninja for a new one (a no-op or one-header rebuild spends
# seconds less in it than in make's recursive checks); a folder configured before keeps its generator.
generator_for() {
  if [ ! -f "$1/CMakeCache.txt" ]; then echo "-GNinja"; fi
}
