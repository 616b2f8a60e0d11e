# Shared by bin/run and bin/test: install what is missing, the first time only.
# Sourced, not run; expects to be in the project's root folder.

export DEBIAN_FRONTEND=noninteractive
VENV=.venv

say() { printf '%s\n' "$*" >&2; }

# apt-get install, as root or through sudo; says what to install when neither is possible.
apt_install() {
  local runner=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      runner=(sudo)
    else
      say "Please install these Debian packages first (as root): $*"
      exit 1
    fi
  fi
  say "Installing $* (first time only)…"
  "${runner[@]}" apt-get update -qq
  "${runner[@]}" apt-get install -y -qq "$@" >/dev/null
}

# A Python of 3.11 or later that can make a venv, installing Debian's when there is none.
find_python() {
  local candidate
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return
    fi
  done
  return 1
}

ensure_python() {
  PYTHON=$(find_python) && return
  apt_install python3 python3-venv
  PYTHON=$(find_python) && return
  apt_install python3.11 python3.11-venv # an older release whose python3 is 3.10
  PYTHON=$(find_python) && return
  say "No Python 3.11 or later with venv could be installed."
  exit 1
}

# .venv with the pinned packages of a requirements file; reinstalled only when it changes.
ensure_venv() {
  local requirements=$1 stamp
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  stamp="$VENV/.installed-$(basename "$requirements")"
  if ! cmp -s <(sha256sum <"$requirements") "$stamp" 2>/dev/null; then
    say "Installing the packages of $requirements into $VENV (first time only)…"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
    sha256sum <"$requirements" >"$stamp"
  fi
  export PATH="$PWD/$VENV/bin:$PATH"
}

# KEY=VALUE lines, taken literally (quotes around a value dropped); the environment wins.
load_env() {
  local line key value
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%$'\r'}
    case "$line" in '' | '#'* | [[:space:]]*) continue ;; esac
    key=${line%%=*}
    value=${line#*=}
    [[ $key =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    case "$value" in \"*\" | \'*\') value=${value:1:${#value}-2} ;; esac
    [ -n "${!key+set}" ] || export "$key=$value"
  done <"$1"
}
