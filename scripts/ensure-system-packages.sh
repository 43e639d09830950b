#!/usr/bin/env bash
# Installs the Debian packages Firebreak needs when they are missing: ffmpeg for test media,
# espeak-ng for test speech, the FFmpeg development libraries, pkg-config and g++ to build vpdq,
# make and swig to build tmkpy, a font for drawtext (the benchmark's captions), nginx with its RTMP
# module for the live-stream tests, a CJK font for the on-screen text tests, Chromium and its
# WebDriver for the review UI's browser test. Needs root to install.
set -euo pipefail
packages=(ffmpeg espeak-ng nginx-light libnginx-mod-rtmp pkg-config libavdevice-dev libavfilter-dev libavformat-dev libavcodec-dev
  libswresample-dev libswscale-dev libavutil-dev g++ make swig fonts-dejavu-core fonts-wqy-microhei
  chromium chromium-driver)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
