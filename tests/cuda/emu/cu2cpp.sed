# src/ops/cuda/*.cu -> C++ for the CPU emulator (emu.h): kernel launches and dynamic shared memory.
s/([A-Za-z_][A-Za-z_0-9]*)<<<(.*)>>>\(/EMU_LAUNCH(\1, \2)(/
s/extern __shared__ ([A-Za-z_0-9]+) ([A-Za-z_0-9]+)\[\];/\1 *\2 = (\1 *)emu::dynamic_shared();/
