/*
 * The Arm DSP extension's packed 16-bit instructions, for the kernels.
 *
 * NN_DSP says whether a kernel should take its packed (SIMD) path:
 * - cores with the DSP extension (Cortex-M4, M7, M33, ...; GCC defines
 *   __ARM_FEATURE_DSP): the helpers are the instructions, through
 *   arm_acle.h or, where ACLE has no intrinsic, one line of inline asm;
 * - NN_EMULATE_DSP defined (host tests): portable C with the instructions'
 *   exact results, so the packed algorithm can be tested under ASan and
 *   UBSan on the host;
 * - otherwise (Cortex-M0/M3, host builds): NN_DSP is 0 and the kernels use
 *   their portable C loops; the helpers do not exist.
 *
 * Packed values are int32_t, as in ACLE: two int16 halves (bits 0-15 the
 * bottom, 16-31 the top) or four int8 bytes. Memory is little-endian, as on
 * every Cortex-M the benchmark runs. The Q (saturation) flag that SMLAD
 * may set is never read: SMLAD's result wraps modulo 2^32, like the
 * emulation's.
 */
#ifndef NN_SIMD_H
#define NN_SIMD_H

#include <stdint.h>
#include <string.h>

/* Unaligned little-endian loads and stores; memcpy compiles to one LDR/STR on Armv7-M. */
static inline int32_t nn_read_s8x4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline int32_t nn_read_s16x2(const int16_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void nn_write_s8x4(int8_t *p, int32_t v)
{
    memcpy(p, &v, sizeof v);
}

static inline void nn_write_s16x2(int16_t *p, int32_t v)
{
    memcpy(p, &v, sizeof v);
}

#if defined(__ARM_FEATURE_DSP)

#include <arm_acle.h>

#define NN_DSP 1

/* Bytes 0 and 2, sign-extended into the bottom and top halves. */
static inline int32_t nn_sxtb16(int32_t x)
{
    return __sxtb16(x);
}

/* Bytes 1 and 3, sign-extended: SXTB16's built-in ROR #8 (GCC does not fold a separate rotate). */
static inline int32_t nn_sxtb16_ror8(int32_t x)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* acc + bottom(x) * bottom(y) + top(x) * top(y), modulo 2^32. */
static inline int32_t nn_smlad(int32_t x, int32_t y, int32_t acc)
{
    return __smlad(x, y, acc);
}

/* acc + bottom(x) * top(y) + top(x) * bottom(y), modulo 2^32. */
static inline int32_t nn_smladx(int32_t x, int32_t y, int32_t acc)
{
    return __smladx(x, y, acc);
}

/* acc + one half of x times one half of y (b = bottom, t = top), modulo 2^32. */
static inline int32_t nn_smlabb(int32_t x, int32_t y, int32_t acc)
{
    return __smlabb(x, y, acc);
}

static inline int32_t nn_smlabt(int32_t x, int32_t y, int32_t acc)
{
    return __smlabt(x, y, acc);
}

static inline int32_t nn_smlatb(int32_t x, int32_t y, int32_t acc)
{
    return __smlatb(x, y, acc);
}

static inline int32_t nn_smlatt(int32_t x, int32_t y, int32_t acc)
{
    return __smlatt(x, y, acc);
}

/* Bottom half of x below the bottom half of y: PKHBT x, y, LSL #16 (ACLE has no intrinsic). */
static inline int32_t nn_pkhbt16(int32_t x, int32_t y)
{
    int32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(x), "r"(y));
    return r;
}

/* Top half of y below the top half of x: PKHTB x, y, ASR #16. */
static inline int32_t nn_pkhtb16(int32_t x, int32_t y)
{
    int32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(x), "r"(y));
    return r;
}

/* Halfword-wise x + y, each half modulo 2^16. */
static inline int32_t nn_sadd16(int32_t x, int32_t y)
{
    return __sadd16(x, y);
}

/* x saturated to [-32768, 32767]: SSAT #16. */
static inline int32_t nn_ssat16bit(int32_t x)
{
    return __ssat(x, 16);
}

/*
 * Halfword-wise maximum and minimum: SSUB16 sets the GE flags per half,
 * SEL picks per half by them. One asm statement each, so nothing can come
 * between the flags and their use.
 */
static inline int32_t nn_smax16(int32_t x, int32_t y)
{
    int32_t r;
    __asm__("ssub16 %0, %1, %2\n\tsel %0, %1, %2" : "=&r"(r) : "r"(x), "r"(y) : "cc");
    return r;
}

static inline int32_t nn_smin16(int32_t x, int32_t y)
{
    int32_t r;
    __asm__("ssub16 %0, %1, %2\n\tsel %0, %2, %1" : "=&r"(r) : "r"(x), "r"(y) : "cc");
    return r;
}

#elif defined(NN_EMULATE_DSP)

#define NN_DSP 1

/* Arithmetic on uint32_t below: it wraps like the instructions; int32_t overflow would be UB. */

static inline int32_t nn_bottom16(int32_t x)
{
    return (int16_t)(uint16_t)((uint32_t)x & 0xFFFFu);
}

static inline int32_t nn_top16(int32_t x)
{
    return (int16_t)(uint16_t)((uint32_t)x >> 16);
}

static inline int32_t nn_pack16(int32_t bottom, int32_t top)
{
    return (int32_t)(((uint32_t)bottom & 0xFFFFu) | ((uint32_t)top << 16));
}

static inline int32_t nn_sxtb16(int32_t x)
{
    const uint32_t u = (uint32_t)x;
    return nn_pack16((int8_t)(uint8_t)(u & 0xFFu), (int8_t)(uint8_t)((u >> 16) & 0xFFu));
}

static inline int32_t nn_sxtb16_ror8(int32_t x)
{
    return nn_sxtb16((int32_t)((uint32_t)x >> 8 | (uint32_t)x << 24));
}

static inline int32_t nn_smlad(int32_t x, int32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(nn_bottom16(x) * nn_bottom16(y)) +
                     (uint32_t)(nn_top16(x) * nn_top16(y)));
}

static inline int32_t nn_smladx(int32_t x, int32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(nn_bottom16(x) * nn_top16(y)) +
                     (uint32_t)(nn_top16(x) * nn_bottom16(y)));
}

static inline int32_t nn_smlabb(int32_t x, int32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(nn_bottom16(x) * nn_bottom16(y)));
}

static inline int32_t nn_smlabt(int32_t x, int32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(nn_bottom16(x) * nn_top16(y)));
}

static inline int32_t nn_smlatb(int32_t x, int32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(nn_top16(x) * nn_bottom16(y)));
}

static inline int32_t nn_smlatt(int32_t x, int32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(nn_top16(x) * nn_top16(y)));
}

static inline int32_t nn_pkhbt16(int32_t x, int32_t y)
{
    return nn_pack16(x, y);
}

static inline int32_t nn_pkhtb16(int32_t x, int32_t y)
{
    return nn_pack16(nn_top16(y), nn_top16(x));
}

static inline int32_t nn_sadd16(int32_t x, int32_t y)
{
    return nn_pack16(nn_bottom16(x) + nn_bottom16(y), nn_top16(x) + nn_top16(y));
}

static inline int32_t nn_ssat16bit(int32_t x)
{
    return x < -32768 ? -32768 : x > 32767 ? 32767 : x;
}

static inline int32_t nn_max32(int32_t x, int32_t y)
{
    return x > y ? x : y;
}

static inline int32_t nn_min32(int32_t x, int32_t y)
{
    return x < y ? x : y;
}

static inline int32_t nn_smax16(int32_t x, int32_t y)
{
    return nn_pack16(nn_max32(nn_bottom16(x), nn_bottom16(y)), nn_max32(nn_top16(x), nn_top16(y)));
}

static inline int32_t nn_smin16(int32_t x, int32_t y)
{
    return nn_pack16(nn_min32(nn_bottom16(x), nn_bottom16(y)), nn_min32(nn_top16(x), nn_top16(y)));
}

#else

#define NN_DSP 0

#endif

/*
 * Saturating and bytewise helpers (the depthwise kernels' output stage):
 * nn_ssat8 clamps to [-128, 127] (SSAT #8), nn_uxtb16 keeps bytes 0 and 2
 * (UXTB16), nn_max_s8x4 / nn_min_s8x4 take the larger / smaller signed
 * byte of each of the 4 lanes (SSUB8 sets the GE flags that SEL reads, so
 * the two share one asm block).
 */
#if defined(__ARM_FEATURE_DSP)

static inline int32_t nn_ssat8(int32_t x)
{
    return __ssat(x, 8);
}

static inline int32_t nn_uxtb16(int32_t x)
{
    return (int32_t)__uxtb16((uint32_t)x);
}

static inline int32_t nn_max_s8x4(int32_t a, int32_t b)
{
    int32_t r;
    __asm__("ssub8 %0, %1, %2\n\tsel %0, %1, %2" : "=&r"(r) : "r"(a), "r"(b) : "cc");
    return r;
}

static inline int32_t nn_min_s8x4(int32_t a, int32_t b)
{
    int32_t r;
    __asm__("ssub8 %0, %1, %2\n\tsel %0, %2, %1" : "=&r"(r) : "r"(a), "r"(b) : "cc");
    return r;
}

/*
 * The same two clamps inside the sparse kernels' assembly output stages: the
 * 4 bytes of r0 to [lo4, hi4], with the asm operands %[lo] and %[hi] as
 * scratch (the bounds are loaded, as those loops have no register to keep
 * them in).
 */
#define NN_CLAMP_R0_ASM                                                                            \
    "ldr %[lo], %[lo4]\n\t"                                                                        \
    "ssub8 %[hi], r0, %[lo]\n\t"                                                                   \
    "sel r0, r0, %[lo]\n\t"                                                                        \
    "ldr %[lo], %[hi4]\n\t"                                                                        \
    "ssub8 %[hi], r0, %[lo]\n\t"                                                                   \
    "sel r0, %[lo], r0\n\t"

#elif defined(NN_EMULATE_DSP)

static inline int32_t nn_ssat8(int32_t x)
{
    return x < -128 ? -128 : x > 127 ? 127 : x;
}

static inline int32_t nn_uxtb16(int32_t x)
{
    return (int32_t)((uint32_t)x & 0x00FF00FFu);
}

/* Lane `lane` of x as a signed byte: bits 8 * lane to 8 * lane + 7. */
static inline int32_t nn_byte_lane(int32_t x, int lane)
{
    return (int8_t)(uint8_t)((uint32_t)x >> (8 * lane));
}

static inline int32_t nn_max_s8x4(int32_t a, int32_t b)
{
    uint32_t r = 0;
    for (int lane = 0; lane < 4; ++lane) {
        const int32_t x = nn_byte_lane(a, lane), y = nn_byte_lane(b, lane);
        r |= (uint32_t)(uint8_t)(x >= y ? x : y) << (8 * lane);
    }
    return (int32_t)r;
}

static inline int32_t nn_min_s8x4(int32_t a, int32_t b)
{
    uint32_t r = 0;
    for (int lane = 0; lane < 4; ++lane) {
        const int32_t x = nn_byte_lane(a, lane), y = nn_byte_lane(b, lane);
        r |= (uint32_t)(uint8_t)(x >= y ? y : x) << (8 * lane);
    }
    return (int32_t)r;
}

#endif

#if NN_DSP
/*
 * Four int32 results as 4 int8 lanes (y0 lowest), saturated to int8
 * (SSAT) and packed (2 PKHBT, 2 UXTB16, an ORR).
 */
static inline int32_t nn_pack_s8x4(int32_t y0, int32_t y1, int32_t y2, int32_t y3)
{
    const int32_t even = nn_pkhbt16(nn_ssat8(y0), nn_ssat8(y2));
    const int32_t odd = nn_pkhbt16(nn_ssat8(y1), nn_ssat8(y3));
    return (int32_t)((uint32_t)nn_uxtb16(even) | (uint32_t)nn_uxtb16(odd) << 8);
}

/*
 * nn_pack_s8x4, then clamped to [lo, hi] given in every byte of lo4 and
 * hi4, all 4 at once (2 SSUB8 + SEL). clamp(ssat8(v), lo, hi) =
 * clamp(v, lo, hi), as the range lies within int8.
 */
static inline int32_t nn_pack_clamp_s8x4(int32_t y0, int32_t y1, int32_t y2, int32_t y3,
                                         int32_t lo4, int32_t hi4)
{
    return nn_min_s8x4(nn_max_s8x4(nn_pack_s8x4(y0, y1, y2, y3), lo4), hi4);
}
#endif

/* A signed byte in each of the 4 lanes of a word. */
static inline int32_t nn_s8x4_splat(int32_t value)
{
    return (int32_t)(0x01010101u * (uint8_t)value);
}

#endif /* NN_SIMD_H */
