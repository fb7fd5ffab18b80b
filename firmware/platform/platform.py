"""The benchmark's local PlatformIO dev-platform (see builder/main.py).

It lives in the repository and declares no packages, so PlatformIO never
needs its registry: compilers come from PATH (arm-none-eabi-gcc, gcc) and
the emulator is qemu-system-arm, all installed with apt.
"""

from platformio.public import PlatformBase


class BenchboardsPlatform(PlatformBase):
    pass
