"""Compile every Triton kernel for a GPU target ahead of time, without a GPU.

    python kernels/compile_check.py [--all] [--arch 90]

Triton's interpreter (the CPU tests) accepts programs that its compiler rejects; this runs the
real compiler pipeline (Triton IR -> LLVM -> PTX -> cubin through the ptxas bundled with Triton)
for each kernel variant, so a kernel that cannot compile fails here rather than on a user's GPU.
Default: one variant per kernel and option; ``--all``: every dtype x k_t x reset x surrogate x
detach combination (about two minutes on two cores). Must run without ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys

if os.environ.get("TRITON_INTERPRET") == "1":
    sys.exit("compile_check.py needs the real compiler: run it without TRITON_INTERPRET=1")

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from stc_zoo.kernels import compress_triton, scb_tail_triton  # noqa: E402

STORAGE = {"fp16": "*fp16", "bf16": "*bf16", "fp32": "*fp32", "fp64": "*fp64"}


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
    args = ap.parse_args(argv)
    target = GPUTarget("cuda", args.arch, 32)
    opts = {"enable_fp_fusion": False}  # as the launchers run them
    count = 0
    for dtype, k_t, reset, surrogate, detach in tail_variants(args.all):
        y, acc = STORAGE[dtype], ("*fp64" if dtype == "fp64" else "*fp32")
        compile_kernel(scb_tail_triton.scb_tail_fwd_kernel,
                       {"y_ptr": y, "w_ptr": "*fp32", "beta_ptr": "*fp32", "v0_ptr": y, "s_ptr": "*i8",
                        "h_ptr": acc, "params_ptr": acc},
                       dict(K=4, K_T=k_t, RESET=reset, HAS_V0=detach, STORE_H=not detach,
                            IS_F64=dtype == "fp64", BLOCK_R=1, BLOCK_S=1024), target, **opts)
        compile_kernel(scb_tail_triton.scb_tail_bwd_kernel,
                       {"gs_ptr": y, "y_ptr": y, "h_ptr": acc, "w_ptr": "*fp32", "beta_ptr": "*fp32",
                        "v0_ptr": y, "gy_ptr": y, "gw_part_ptr": acc, "gbeta_part_ptr": acc, "gv0_ptr": y,
                        "params_ptr": acc},
                       dict(K=3, K_T=k_t, RESET=reset, DETACH_RESET=detach, SURROGATE=surrogate,
                            HAS_V0=not detach, IS_F64=dtype == "fp64", BLOCK_R=4, BLOCK_S=256), target, **opts)
        count += 2
    for by_time in (False, True):
        compile_kernel(compress_triton.compress_events_kernel,
                       {f"{n}_ptr": "*i64" for n in ("x", "y", "p", "t", "offsets")}
                       | {"weights_ptr": "*fp64", "out_ptr": "*fp64"},
                       dict(N_BINS=16, RATIO=4, SPATIAL=2, BY_TIME=by_time, BLOCK=1024), target)
        count += 1
    print(f"{count} kernel variants compiled for sm_{args.arch} (triton {triton.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
