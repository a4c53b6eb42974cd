"""The machine a number was measured on: the CPU's name and the vector instruction sets it
has (results and speeds differ between them: BENCHMARKS.md names them beside every number)."""
import os
import platform
from pathlib import Path

# /proc/cpuinfo flags that change what XLA:CPU and PyTorch can use, in the order named
INSTRUCTION_SETS = (('avx512f', 'AVX-512'), ('avx512_bf16', 'AVX-512 BF16'),
                    ('amx_tile', 'AMX'), ('avx2', 'AVX2'), ('fma', 'FMA'),
                    ('asimd', 'NEON'), ('sve', 'SVE'))


def cpuinfo() -> dict:
  """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
  path = Path('/proc/cpuinfo')
  if not path.exists():
    return {}
  fields = {}
  for line in path.read_text().split('\n\n')[0].splitlines():
    key, _, value = line.partition(':')
    fields[key.strip()] = value.strip()
  return fields


def instruction_sets(info: dict | None = None) -> list[str]:
  flags = set((cpuinfo() if info is None else info).get('flags', '').split())
  flags |= set((cpuinfo() if info is None else info).get('Features', '').split())  # Arm
  return [name for flag, name in INSTRUCTION_SETS if flag in flags]


def describe() -> str:
  """E.g. 'AMD EPYC (family 25, model 1; AVX2, FMA), 2 cores'."""
  info = cpuinfo()
  name = info.get('model name') or platform.processor() or platform.machine()
  family = (f'family {info["cpu family"]}, model {info["model"]}; '
            if 'cpu family' in info and 'model' in info else '')
  sets = ', '.join(instruction_sets(info)) or 'no AVX2'
  return f'{name} ({family}{sets}), {os.cpu_count()} cores'
