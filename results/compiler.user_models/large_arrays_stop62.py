"""Stop 62: ops whose kernels keep a tensor-sized scratch array, each compiled and called in a
fresh process on a (3, 2^21 + 3) tensor; prints each process's exit status (139: killed by a
segmentation fault, the stack overflow before the fix) and, if it lived, the largest
difference from eager.

    PYTHONPATH=src .venv/bin/python results/compiler.user_models/large_arrays_stop62.py
"""

from __future__ import annotations

import subprocess
import sys

OPS = ("torch.cumsum(x, 0)", "x.sum(0)", "torch.softmax(x, -1)", "x.argmax(0).float()")
PROGRAM = """
import torch, provenml.compiler as pc
class M(torch.nn.Module):
    def forward(self, x): return {op}
x = torch.randn(3, (1 << 21) + 3)
c = pc.compile(M().eval(), (x,), threads=2, tuning=False)
print((c(x) - M()(x)).abs().max().item())
"""


def main() -> None:
    for op in OPS:
        done = subprocess.run(
            [sys.executable, "-c", PROGRAM.format(op=op)], capture_output=True, text=True
        )
        status = -done.returncode + 128 if done.returncode < 0 else done.returncode
        print(f"{op}: exit {status}, max difference {done.stdout.strip() or '-'}", flush=True)


if __name__ == "__main__":
    main()
