#!/usr/bin/env python3
"""Writes the conversion tables that tests/unit/numeric_test.cpp checks dsv4's number types against.

The tables come from an independent implementation: ml_dtypes (bfloat16, float8_e4m3fn,
float8_e5m2, float4_e2m1fn, float8_e8m0fnu) and numpy (float16). Install with
`pip install ml_dtypes numpy` and run from the repository root:

    python3 tools/gen_numeric_tables.py tests/data/numeric

Files (raw little-endian, no header):
  decode_<type>.f32       value of every code (256 codes, 16 for e2m1, 65536 for f16 and bf16)
  encode_<type>.u8/.u16   the code chosen for every fp32 probe below
Probes: for every 16-bit upper half h (65536 of them) and each lower half l in LOWS, the fp32
with bits (h << 16) | l, h-major. The lower halves put inputs just below, on and just above the
rounding ties of bf16 (bit 15) and f16 (bit 12), with and without sticky bits.
"*_sat" tables clamp the input to the largest finite value first (NaN stays NaN): the OCP MX
"satfinite" conversion. The plain tables are the casts of ml_dtypes/numpy (overflow to inf or NaN).
"""
import pathlib
import sys

import ml_dtypes
import numpy as np

LOWS = [0x0000, 0x0FFF, 0x1000, 0x1001, 0x3000, 0x7FFF, 0x8000, 0x8001]


def probes() -> np.ndarray:
    hi = np.arange(65536, dtype=np.uint32)[:, None] << np.uint32(16)
    lo = np.array(LOWS, dtype=np.uint32)[None, :]
    return (hi | lo).reshape(-1).view(np.float32)


def main() -> None:
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data/numeric")
    out.mkdir(parents=True, exist_ok=True)
    x = probes()
    byte_types = {
        "e4m3": (ml_dtypes.float8_e4m3fn, 448.0),
        "e5m2": (ml_dtypes.float8_e5m2, 57344.0),
        "e2m1": (ml_dtypes.float4_e2m1fn, 6.0),
        "e8m0": (ml_dtypes.float8_e8m0fnu, None),
    }
    with np.errstate(over="ignore", invalid="ignore"):
        for name, (dtype, maxv) in byte_types.items():
            ncodes = 16 if name == "e2m1" else 256
            codes = np.arange(ncodes, dtype=np.uint8)
            codes.view(dtype).astype(np.float32).tofile(out / f"decode_{name}.f32")
            x.astype(dtype).view(np.uint8).tofile(out / f"encode_{name}.u8")
            if maxv is not None and name != "e2m1":
                np.clip(x, -maxv, maxv).astype(dtype).view(np.uint8).tofile(
                    out / f"encode_{name}_sat.u8")
        all16 = np.arange(65536, dtype=np.uint16)
        all16.view(ml_dtypes.bfloat16).astype(np.float32).tofile(out / "decode_bf16.f32")
        all16.view(np.float16).astype(np.float32).tofile(out / "decode_f16.f32")
        x.astype(ml_dtypes.bfloat16).view(np.uint16).tofile(out / "encode_bf16.u16")
        x.astype(np.float16).view(np.uint16).tofile(out / "encode_f16.u16")
    (out / "VERSIONS").write_text(
        f"ml_dtypes {ml_dtypes.__version__}\nnumpy {np.__version__}\nlows {' '.join(hex(l) for l in LOWS)}\n")


if __name__ == "__main__":
    main()
