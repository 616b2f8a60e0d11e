# Shared by bin/run, bin/test and bin/lock: install what is missing, once. Sourced, not run;
# expects to be in the project's root folder. What cannot be installed is said in one message
# that names everything to install, and how.

VENV=.venv

say() { printf '%s\n' "$*" >&2; }

# How this user runs a command as root: nothing (root), "sudo -n" (sudo that needs no password,
# or one just given), or no way at all (returns 1).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    ROOT=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    ROOT=(sudo -n)
  elif command -v sudo >/dev/null 2>&1 && [ -t 0 ] && say "Installing needs root: sudo asks for your password." &&
    sudo -v 2>/dev/null; then
    ROOT=(sudo -n)
  else
    return 1
  fi
}

# A Python of 3.11 or later that can make a venv, if there is one.
find_python() {
  local candidate
  for candidate in python3.13 python3.12 python3.11 python3 python3.14; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return
    fi
  done
  return 1
}

# The version apt would install for a package ("" when it has none, or its lists are unread).
apt_candidate() {
  apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p' | grep -v '(none)' || true
}

# The Debian packages that give a Python of 3.11 or later with venv, or "" when this release
# has none (Debian 11, Ubuntu 20.04: their python3 is older, and no python3.11 is packaged).
python_packages() {
  local version
  version=$(apt_candidate python3)
  if [ -z "$version" ] || dpkg --compare-versions "$version" ge 3.11; then
    echo python3 python3-venv
  elif [ -n "$(apt_candidate python3.11)" ]; then
    echo python3.11 python3.11-venv # Ubuntu 22.04: python3 is 3.10, python3.11 is packaged
  fi
}

# "python" in $packages becomes the packages that give one, or the system is too old.
name_python_packages() {
  [ "${packages[0]}" = python ] || return 0
  local python
  read -r -a python <<<"$(python_packages)"
  [ ${#python[@]} -gt 0 ] || too_old
  packages=("${python[@]}" "${packages[@]:1}")
}

too_old() {
  say "This system's packages offer no Python 3.11 or later (its python3 is $(apt_candidate python3 | cut -d- -f1))."
  say "Use Debian 12 or 13, or Ubuntu 22.04 or later; or install a Python 3.11 or later with venv"
  say "(python.org, pyenv, deadsnakes) and put it on PATH as python3.11, python3.12 or python3.13."
  exit 1
}

# Installs what bin/$1 needs: a Python of 3.11 or later, and the Debian packages that give the
# commands named after it ("redis-server" for the tests). One apt run, or one message.
ensure_system() {
  local purpose=$1 packages=() command
  shift
  PYTHON=$(find_python) || packages+=(python)
  for command in "$@"; do
    command -v "$command" >/dev/null 2>&1 || packages+=("$command")
  done
  [ ${#packages[@]} -gt 0 ] || return 0

  if ! as_root; then
    name_python_packages
    say "bin/$purpose needs these Debian packages, which only root can install:"
    say "    apt-get install ${packages[*]}"
    say "Run that as root (or give this user sudo), then run bin/$purpose again."
    exit 1
  fi

  local log
  log=$(mktemp)
  # Quiet unless it fails: apt's and debconf's chatter says nothing to someone starting the bot.
  if ! "${ROOT[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >"$log" 2>&1; then
    cat "$log" >&2
    say "apt-get update failed (above): check the network and /etc/apt/sources.list."
    exit 1
  fi
  name_python_packages
  say "Installing ${packages[*]} (Debian packages; once)…"
  if ! "${ROOT[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${packages[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    say "apt-get install ${packages[*]} failed (above)."
    exit 1
  fi
  rm -f "$log"
  PYTHON=$(find_python) || {
    say "Installed ${packages[*]}, yet no Python 3.11 or later with venv is on PATH."
    exit 1
  }
}

# pip trusts the system's certificates (a proxy's own CA, installed by the admin, among them).
pip_options() {
  PIP_OPTIONS=(--disable-pip-version-check -q)
  if [ -z "${PIP_CERT:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    PIP_OPTIONS+=(--cert /etc/ssl/certs/ca-certificates.crt)
  fi
}

# .venv with the pinned packages of a requirements file; reinstalled only when it changes.
ensure_venv() {
  local requirements=$1 stamp
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  stamp="$VENV/.installed-$(basename "$requirements")"
  if ! cmp -s <(sha256sum <"$requirements") "$stamp" 2>/dev/null; then
    say "Installing the packages of $requirements into $VENV…"
    pip_options
    "$VENV/bin/python" -m pip install "${PIP_OPTIONS[@]}" -r "$requirements"
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
