#!/bin/sh
# Installs the Debian packages neti needs, only when one is missing
# (idempotent and quiet when everything is there already).
set -e
# The second line is for the preview window (make builds it): X11 headers
# for glfw, and Xvfb + xwd for its test.
PKGS="mesa-vulkan-drivers libvulkan1 libvulkan-dev vulkan-validationlayers glslc spirv-tools gcc pkg-config
libx11-dev libxrandr-dev libxinerama-dev libxcursor-dev libxi-dev libxxf86vm-dev libgl1-mesa-dev xvfb xauth x11-apps"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if ! command -v go >/dev/null 2>&1; then
	echo "install-deps: Go 1.26 or newer is needed (https://go.dev/doc/install); Debian 12's golang package is too old" >&2
	exit 1
fi
[ -z "$missing" ] && exit 0
echo "install-deps: installing$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 $missing >/dev/null
