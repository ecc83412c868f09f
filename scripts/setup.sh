#!/usr/bin/env bash
# Sets up everything deepspeech2 needs on a fresh machine: a .venv with the package
# (and its test tools), and Debian's offline TTS engines for the mini corpus.
set -euo pipefail
cd "$(dirname "$0")/.."

TTS_PACKAGES="flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts espeak-ng"
# Real speech for evaluation only (ds2 data asterisk): phone prompts and their texts.
TTS_PACKAGES="$TTS_PACKAGES asterisk-core-sounds-en-wav asterisk-core-sounds-en"
missing=""
for tool in flite text2wave espeak-ng; do command -v "$tool" >/dev/null || missing="$missing $tool"; done
[ -f /usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz ] || missing="$missing asterisk-core-sounds-en"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing the TTS engines ($TTS_PACKAGES)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq -o DPkg::Lock::Timeout=600 $TTS_PACKAGES >/dev/null
  else
    echo "setup: the mini corpus needs Debian's TTS engines; run as root:" >&2
    echo "  sudo apt-get install -y $TTS_PACKAGES" >&2
  fi
fi

# Debian's chromium: the browser test of ds2 serve's web page (Playwright's own browser
# download is not used).
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing chromium (the web page's browser test)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 chromium \
      >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends -o DPkg::Lock::Timeout=600 chromium >/dev/null; }
  else
    echo "setup: the browser test needs chromium; run as root: sudo apt-get install -y chromium" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# torch is pinned to 2.13.0 (CPU wheel) in pyproject.toml; a newer one would be a CUDA build.
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,voices,lm,serve]'
echo "setup: ready (.venv/bin/ds2)"
