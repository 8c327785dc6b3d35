"""The appliance disk boots under qemu and is onboarded from a peer namespace.

Slow (a TCG boot, a factory reset and a reboot: several minutes) and needs root: marked
``slow`` and ``netns``. It boots the image that the session fixture ``appliance_image``
(tests/image/conftest.py) builds from this checkout first, once for this test and
test_update.py (never a stale one; the build caches the Debian base system and the
dependency wheels in /var/cache/clgwd-image, so a rebuild takes a minute or two).
Run it alone with
``.venv/bin/python -m pytest tests/image/test_boot.py -m slow -s``; ``image/test-boot``
is the same check as one command.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.netns]


@pytest.mark.timeout(3600)
def test_boot_onboard_reset_reboot(appliance_image: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The image builds; then DHCP lease, cloudlink.local over mDNS, health, the page
    with the console's setup code, factory reset back to first-boot state, reboot."""
    image = appliance_image
    result = subprocess.run([sys.executable, "-m", "tests.image.boot", "--image", str(image)],
                            cwd=ROOT, capture_output=True, text=True, timeout=3000,
                            check=False)
    with capsys.disabled():
        print("\n" + result.stdout)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    match = re.search(r"^BOOT-TO-HEALTH ([0-9.]+)$", result.stdout, re.M)
    assert match is not None
    assert float(match.group(1)) < 600
