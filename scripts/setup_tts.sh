#!/usr/bin/env bash
# Install the offline TTS voices and English text packages the corpus builder uses (Debian/Ubuntu).
# Idempotent: installs only what is missing; `--check` only reports. Used by CI and the training recipe.
#   espeak-ng (8 English accents x ~100 variants), flite (kal, kal16, awb, rms, slt),
#   festival with kal, ked and the slt HTS voice; festival's Czech, Italian, Finnish and Hindi voices for English
#   with an accent (rnnt corpus build --engines accent); fortunes, bible-kjv and wordnet for text; sox for checks.
set -euo pipefail

PACKAGES=(
  espeak-ng flite sox
  festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
  festvox-czech-dita festvox-czech-krb festvox-czech-machac festvox-czech-ph festvox-italp16k festvox-itapc16k
  festvox-suopuhe-lj festvox-suopuhe-mv festvox-hi-nsk
  fortune-mod fortunes-min fortunes bible-kjv wordnet
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [[ "${1:-}" == "--check" ]]; then
  if ((${#missing[@]})); then
    echo "missing: ${missing[*]}" >&2
    exit 1
  fi
  echo "all TTS and text packages installed"
  exit 0
fi

if ((${#missing[@]} == 0)); then
  echo "setup_tts: all packages already installed"
  exit 0
fi

SUDO=""
if [[ "$(id -u)" != "0" ]]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "setup_tts: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "setup_tts: installing ${missing[*]}"
if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; then
  # package lists missing or stale: refresh once and retry
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
echo "setup_tts: done"
