"""Compile every Triton kernel for a GPU target ahead of time, without a GPU.

    python kernels/compile_check.py [--all] [--arch 90]

Triton's interpreter (the CPU tests) accepts programs that its compiler rejects; this runs the
real compiler pipeline (Triton IR -> LLVM -> PTX -> cubin through the ptxas bundled with Triton)
for each kernel variant, so a kernel that cannot compile fails here rather than on a user's GPU.
Default: one variant per kernel and option; ``--all``: every dtype x k_t x reset x surrogate x
detach combination (about two minutes on two cores). Must run without ``TRITON_INTERPRET=1``.

It also reads the PTX of every variant: no ``fma`` instruction may stand in it. The kernels promise
the reference's roundings (``a * b + c`` rounded twice, as eager PyTorch does it), and a fused
multiply-add rounds once, so a membrane a rounding away from a threshold could fire on one side and
not the other. The launchers compile with ``enable_fp_fusion=False`` (Triton 3.9 warns that its
default, fusion on, is about to change, so nothing is left to the default); this check fails if a
kernel or a Triton version ever lets a contraction through.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import sys

if os.environ.get("TRITON_INTERPRET") == "1":
    sys.exit("compile_check.py needs the real compiler: run it without TRITON_INTERPRET=1")

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from stc_zoo.kernels import compress_triton, scb_tail_triton  # noqa: E402

STORAGE = {"fp16": "*fp16", "bf16": "*bf16", "fp32": "*fp32", "fp64": "*fp64"}
FMA = re.compile(r"\bfma\.r[nzmp]\.(?:ftz\.)?(?:sat\.)?f(?:16|32|64)")
OPTIONS = {"enable_fp_fusion": False}  # as the launchers run them (scb_tail_triton._LAUNCH, compress_triton)


def fused_multiply_adds(kernel) -> int:
    """How many fma instructions the PTX of a compiled kernel holds."""
    return len(FMA.findall(kernel.asm["ptx"]))


def compile_kernel(fn, pointers: dict[str, str], constexprs: dict, target: GPUTarget, **options):
    """Compile ``fn`` with the given pointer types (other runtime arguments are i32) and constants."""
    signature = {name: pointers.get(name, "constexpr" if name in constexprs else "i32") for name in fn.arg_names}
    constants = {(fn.arg_names.index(name),): value for name, value in constexprs.items()}
    return triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constants), target=target,
                          options=options)


def tail_variants(everything: bool):
    if everything:
        yield from itertools.product(STORAGE, (1, 2, 3, 4), (0, 1), (0, 1, 2), (False, True))
    else:  # each value of each option at least once
        yield from [("fp16", 2, 0, 0, False), ("bf16", 1, 1, 1, True), ("fp32", 3, 0, 2, True),
                    ("fp64", 4, 1, 0, False)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--all", action="store_true", help="every variant, not one per option")
    ap.add_argument("--arch", type=int, default=90, help="CUDA compute capability, e.g. 80, 90")
    ap.add_argument("--fp-fusion", action="store_true",
                    help="compile with FP fusion on, as Triton's default would (the check must then fail)")
    args = ap.parse_args(argv)
    target = GPUTarget("cuda", args.arch, 32)
    opts = {**OPTIONS, "enable_fp_fusion": args.fp_fusion}
    compiled = []  # (what, kernel)
    for dtype, k_t, reset, surrogate, detach in tail_variants(args.all):
        y, acc = STORAGE[dtype], ("*fp64" if dtype == "fp64" else "*fp32")
        compiled.append((f"scb_tail_fwd {dtype} k_t={k_t}", compile_kernel(
                       scb_tail_triton.scb_tail_fwd_kernel,
                       {"y_ptr": y, "w_ptr": "*fp32", "beta_ptr": "*fp32", "v0_ptr": y, "s_ptr": "*i8",
                        "h_ptr": acc, "params_ptr": acc},
                       dict(K=4, K_T=k_t, RESET=reset, HAS_V0=detach, STORE_H=not detach,
                            IS_F64=dtype == "fp64", BLOCK_R=1, BLOCK_S=1024), target, **opts)))
        compiled.append((f"scb_tail_bwd {dtype} k_t={k_t}", compile_kernel(scb_tail_triton.scb_tail_bwd_kernel,
                       {"gs_ptr": y, "y_ptr": y, "h_ptr": acc, "w_ptr": "*fp32", "beta_ptr": "*fp32",
                        "v0_ptr": y, "gy_ptr": y, "gw_part_ptr": acc, "gbeta_part_ptr": acc, "gv0_ptr": y,
                        "params_ptr": acc},
                       dict(K=3, K_T=k_t, RESET=reset, DETACH_RESET=detach, SURROGATE=surrogate,
                            HAS_V0=not detach, IS_F64=dtype == "fp64", BLOCK_R=4, BLOCK_S=256), target, **opts)))
    # The float64 case that failed on an H100: K=1, k_t=4, an initial membrane and the stored H, rows of one element.
    compiled.append(("scb_tail_fwd fp64 k_t=4 v0 store_h (the H100 case)", compile_kernel(
        scb_tail_triton.scb_tail_fwd_kernel,
        {"y_ptr": "*fp64", "w_ptr": "*fp64", "beta_ptr": "*fp64", "v0_ptr": "*fp64", "s_ptr": "*fp64",
         "h_ptr": "*fp64", "params_ptr": "*fp64"},
        dict(K=1, K_T=4, RESET=0, HAS_V0=True, STORE_H=True, IS_F64=True, BLOCK_R=1024, BLOCK_S=1), target, **opts)))
    for by_time in (False, True):
        compiled.append((f"compress_events by_time={by_time}", compile_kernel(
                       compress_triton.compress_events_kernel,
                       {f"{n}_ptr": "*i64" for n in ("x", "y", "p", "t", "offsets")}
                       | {"weights_ptr": "*fp64", "out_ptr": "*fp64"},
                       dict(N_BINS=16, RATIO=4, SPATIAL=2, BY_TIME=by_time, BLOCK=1024), target, **opts)))
    fused = [(what, n) for what, kernel in compiled if (n := fused_multiply_adds(kernel))]
    print(f"{len(compiled)} kernel variants compiled for sm_{args.arch} (triton {triton.__version__})")
    if fused:
        print("fused multiply-adds in the PTX (the reference rounds twice there): "
              + ", ".join(f"{what}: {n}" for what, n in fused), file=sys.stderr)
        return 1
    print("no fma instruction in any kernel's PTX: every a * b + c rounds twice, as in the reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
