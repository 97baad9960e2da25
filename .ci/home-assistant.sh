#!/usr/bin/env bash
# The real Home Assistant that tests/integrations/test_home_assistant.py drives, in its own
# virtualenv on Python 3.13, cached outside the repository (/var/cache/stonewarmer/ by default,
# $STONEWARMER_HA_CACHE to move it). The first build takes about 4 minutes; later runs find it.
# Without a Python 3.13 it says so and the test is skipped with that reason.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 tests/integrations/home_assistant/install.py --if-possible
