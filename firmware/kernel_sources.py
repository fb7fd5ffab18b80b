"""PlatformIO pre-script: build the optimized kernels (the default) or the reference ones.

Each firmware/kernels/reference/<kernel>.c is the plain reference kernel of
firmware/kernels/<kernel>.c, with the same symbols (docs/kernels.md,
"Reference and optimized kernels"). platformio.ini's source filter leaves
reference/ out; with NN_REFERENCE_KERNELS defined in the build flags, e.g.

    PLATFORMIO_BUILD_FLAGS=-DNN_REFERENCE_KERNELS pio run -e mps2_an386

this script swaps each optimized file that has a reference twin for it.
Files without one (kernels that are the plain loop already, most sparse
formats) are in both builds. Only PlatformIO's generic build API is used
here, so this works with any platform.
"""

import os

Import("env")  # SCons provides Import() and the build environment

SWITCH = "NN_REFERENCE_KERNELS"


def defines(flags):
    """The macro names that build flags define."""
    return {d[0] if isinstance(d, (list, tuple)) else d for d in env.ParseFlags(flags).get("CPPDEFINES", [])}


if SWITCH in defines(env.get("BUILD_FLAGS", [])):
    reference_dir = os.path.join(env.subst("$PROJECT_SRC_DIR"), "kernels", "reference")
    twins = sorted(name for name in os.listdir(reference_dir) if name.endswith(".c"))
    env.Append(SRC_FILTER=["-<kernels/%s> +<kernels/reference/%s>" % (name, name) for name in twins])
