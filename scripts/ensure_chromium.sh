#!/bin/sh
# Make Debian's Chromium available for the browser tests (tests/test_insights_browser.py drive
# /usr/bin/chromium through Playwright's executable_path; `playwright install` is never used).
#
# Present: does nothing. Missing: installs it with apt-get when this user may (root, or passwordless
# sudo). Otherwise it prints why and the command to run (on stderr) and prints the pytest arguments that
# leave the browser tests out (on stdout), so `make test` runs everything else:
#     pytest $(sh scripts/ensure_chromium.sh) ...
# With INTELLEGO_REQUIRE_BROWSER=1 (CI) it prints no such arguments: the browser tests then run and fail
# on the missing browser instead of being left out.
# CHROMIUM overrides the path (for testing this script); APT_GET the apt-get command.
set -u
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
APT_GET="${APT_GET:-apt-get}"
SKIP="--deselect tests/test_insights_browser.py --deselect tests/test_insights_llm_browser.py --deselect tests/test_docs_site.py::test_site_index_opens_in_chromium"

[ -x "$CHROMIUM" ] && exit 0

if ! command -v "$APT_GET" >/dev/null 2>&1; then
    why="there is no apt-get here; install Chromium so that $CHROMIUM runs it"
    how="(see your system's package manager)"
else
    if [ "$(id -u)" = 0 ]; then
        sudo=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
        sudo="sudo -n"
    else
        sudo="none"
    fi
    how="sudo apt-get install -y chromium"
    [ "$sudo" = "" ] && how="apt-get install -y chromium"
    if [ "$sudo" = none ]; then
        why="installing it needs root or passwordless sudo"
    else
        echo "ensure_chromium: $CHROMIUM is missing; installing Debian's chromium: ${sudo:+$sudo }$APT_GET install -y chromium" >&2
        if $sudo env DEBIAN_FRONTEND=noninteractive "$APT_GET" update -q >&2 &&
           $sudo env DEBIAN_FRONTEND=noninteractive "$APT_GET" install -y -q chromium >&2 &&
           [ -x "$CHROMIUM" ]; then
            exit 0
        fi
        why="'$APT_GET install chromium' failed (see above)"
    fi
fi

if [ "${INTELLEGO_REQUIRE_BROWSER:-}" = 1 ]; then
    echo "ensure_chromium: $CHROMIUM is missing and $why: the browser tests will fail (INTELLEGO_REQUIRE_BROWSER=1)." >&2
else
    echo "ensure_chromium: browser tests skipped: $CHROMIUM is missing and $why." >&2
    echo "$SKIP"
fi
echo "ensure_chromium: to run them, install Debian's chromium: $how" >&2
exit 0
