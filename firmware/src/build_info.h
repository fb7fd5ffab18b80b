/*
 * What the harness built: firmware/build_info.py generates the definitions
 * from the build environment, so the host can tell by the handshake whether
 * a board runs the firmware it expects.
 */
#ifndef BUILD_INFO_H
#define BUILD_INFO_H

/* The harness's hash of everything the firmware was built from (model,
 * kernel, board environment, toolchain, harness version), or "unset". */
extern const char build_id[];

/* The PlatformIO environment, e.g. "nucleo_f446re". */
extern const char build_env[];

#endif
