"""PlatformIO pre-script: build the generated model into the firmware.

The harness compiles each model to a directory holding model.h and model.c
(docs/design.md) and names it in the environment variable HARNESS_MODEL_DIR.
Only PlatformIO's generic build API is used here, so this works with any
platform, the local one in firmware/platform or an official one.
"""

import os
import sys

Import("env")  # SCons provides Import() and the build environment

REQUIRED_FILES = ("model.h", "model.c")


def model_dir():
    path = os.environ.get("HARNESS_MODEL_DIR")
    if not path:
        return None, "HARNESS_MODEL_DIR is not set: point it at a generated model directory"
    missing = [name for name in REQUIRED_FILES if not os.path.isfile(os.path.join(path, name))]
    if missing:
        return None, "HARNESS_MODEL_DIR=%s has no %s" % (path, " or ".join(missing))
    return os.path.abspath(path), None


directory, problem = model_dir()
if problem:
    sys.stderr.write("Error: %s\n" % problem)
    env.Exit(1)

# The runtime includes model.h; every source of the model dir is compiled.
env.Append(CPPPATH=[directory])
env.BuildSources(os.path.join("$BUILD_DIR", "model"), directory)
